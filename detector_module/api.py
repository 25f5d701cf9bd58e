"""The Web API: /score, the Custom Vision compatible routes, health, model and metrics.

aiohttp serves it: one small package that gives streaming body reads (so an oversized body
is refused at the limit, not after buffering it), multipart parsing for Custom Vision's
``imageData`` field, and an event loop that never blocks, since decoding and inference run
in worker threads. Every error is a JSON body ``{"error": kind, "message": text}``.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from datetime import UTC, datetime

from aiohttp import BodyPartReader, web

from config.detector import DetectorSettings, EventSettings
from contracts.detection import Detection
from detector_module.detection import PostProcess
from detector_module.engine import LoadedModel, ModelSlot
from detector_module.events import DetectionEvents
from detector_module.imaging import ImageError, ImageHeader, decode, inspect
from detector_module.metrics import Metrics

log = logging.getLogger(__name__)

MB = 1024 * 1024
_CHUNK = 64 * 1024
RAW_TYPES = ("application/octet-stream",)
CV_FIELD = "imageData"
MAX_CAMERA_ID = 128
PROMETHEUS_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    """An answer other than 200: status, error kind, message and extra headers."""

    def __init__(self, status: int, kind: str, message: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message
        self.headers = headers or {}


def _error_response(status: int, kind: str, message: str,
                    headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": kind, "message": message}, status=status,
                             headers=headers)


class Slots:
    """Bounded concurrent inferences whose limit follows the live settings."""

    def __init__(self) -> None:
        self.busy = 0
        self._cond = asyncio.Condition()

    async def acquire(self, limit: int, wait_s: float) -> bool:
        async with self._cond:
            try:
                await asyncio.wait_for(self._cond.wait_for(lambda: self.busy < limit), wait_s)
            except TimeoutError:
                return False
            self.busy += 1
            return True

    async def release(self) -> None:
        async with self._cond:
            self.busy -= 1
            self._cond.notify_all()


def _parse_ts(value: str | None) -> str:
    """The frame time as ISO 8601 UTC: from ``ts`` (ISO 8601 or epoch seconds) or now."""
    if value is None or value == "":
        return datetime.now(UTC).isoformat(timespec="milliseconds")
    try:
        stamp = datetime.fromtimestamp(float(value), UTC)
    except ValueError:
        try:
            stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ApiError(400, "bad_request", f"ts {value!r} is neither ISO 8601 nor epoch "
                           "seconds") from None
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=UTC)
    except (OverflowError, OSError):
        raise ApiError(400, "bad_request", f"ts {value!r} is out of range") from None
    return stamp.astimezone(UTC).isoformat(timespec="milliseconds")


def _camera_id(request: web.Request) -> str | None:
    value = request.query.get("camera_id") or None
    if value is not None and (len(value) > MAX_CAMERA_ID or not value.isprintable()):
        raise ApiError(400, "bad_request", f"camera_id must be at most {MAX_CAMERA_ID} "
                       "printable characters")
    return value


class Api:
    """Handlers over the shared state; ``settings()`` returns the settings in force."""

    def __init__(self, settings: Callable[[], DetectorSettings], slot: ModelSlot,
                 events: DetectionEvents, metrics: Metrics, executor: Executor) -> None:
        self._settings = settings
        self._slot = slot
        self._events = events
        self._metrics = metrics
        self._executor = executor
        self._slots: Slots | None = None

    def app(self) -> web.Application:
        # The body limit is enforced per request from the live settings (see _read_body);
        # aiohttp's own limit only has to stay out of the way.
        app = web.Application(middlewares=[self._errors], client_max_size=256 * MB + 1)
        app.on_startup.append(self._startup)
        app.add_routes([
            web.post("/score", self.score),
            web.post("/image", self.custom_vision),
            web.post("/image/nostore", self.custom_vision),
            web.post("/{project}/detect/iterations/{iteration}/image", self.custom_vision),
            web.post("/{project}/detect/iterations/{iteration}/image/nostore",
                     self.custom_vision),
            web.get("/healthz", self.healthz),
            web.get("/readyz", self.readyz),
            web.get("/model", self.model),
            web.get("/metrics", self.metrics),
        ])
        return app

    async def _startup(self, app: web.Application) -> None:
        self._slots = Slots()  # created on the serving loop it belongs to

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        route = request.match_info.route.resource
        name = route.canonical if route is not None else "unmatched"
        try:
            response = await handler(request)
        except ApiError as exc:
            self._metrics.error(exc.kind)
            response = _error_response(exc.status, exc.kind, exc.message, exc.headers)
        except web.HTTPException as exc:
            kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status, "http_error")
            self._metrics.error(kind)
            response = _error_response(exc.status, kind, exc.reason,
                                       {k: v for k, v in exc.headers.items()
                                        if k.lower() == "allow"})
        except Exception as exc:  # noqa: BLE001 - the client gets JSON, the log the traceback
            self._metrics.error("internal")
            # The structured event line, plus the traceback that event() does not carry.
            log.error("api.internal_error", exc_info=exc,
                      extra={"fields": {"path": request.path, "error": repr(exc)}})
            response = _error_response(500, "internal", "internal error while scoring; see "
                                       "the module log")
        self._metrics.request(name, response.status)
        return response

    # -- scoring -------------------------------------------------------------------------

    @staticmethod
    def _check_length(request: web.Request, limit: int) -> None:
        if request.content_length is not None and request.content_length > limit:
            raise ApiError(413, "body_too_large", f"body of {request.content_length} bytes is "
                           f"over the limit of {limit} bytes")

    @staticmethod
    async def _read_limited(read_chunk: Callable[[int], Awaitable[bytes]], limit: int) -> bytes:
        """Read chunk by chunk and stop at the limit, never buffering an oversized body."""
        chunks, size = [], 0
        while chunk := await read_chunk(_CHUNK):
            size += len(chunk)
            if size > limit:
                raise ApiError(413, "body_too_large", f"body is over the limit of {limit} "
                               "bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    async def _read_body(self, request: web.Request, limit: int) -> bytes:
        self._check_length(request, limit)
        if request.content_length is not None:
            return await request.read()  # length known and within the limit: one buffer
        return await self._read_limited(request.content.read, limit)

    async def _read_multipart(self, request: web.Request, limit: int) -> bytes:
        self._check_length(request, limit)
        try:
            reader = await request.multipart()
            while (part := await reader.next()) is not None:
                if isinstance(part, BodyPartReader) and part.name == CV_FIELD:
                    return await self._read_limited(part.read_chunk, limit)
        except (ValueError, AssertionError) as exc:
            raise ApiError(400, "bad_request", f"malformed multipart body: {exc}") from None
        raise ApiError(400, "bad_request", f"multipart body has no {CV_FIELD!r} field")

    async def _image_bytes(self, request: web.Request, limit: int) -> bytes:
        ctype = request.content_type
        raw = ctype in RAW_TYPES or ctype.startswith("image/")
        if raw or not request.headers.get("Content-Type"):
            return await self._read_body(request, limit)
        if ctype == "multipart/form-data":
            return await self._read_multipart(request, limit)
        raise ApiError(415, "unsupported_media", f"content type {ctype!r} is not accepted: "
                       "send image/jpeg, image/png, image/bmp, application/octet-stream or "
                       f"multipart/form-data with a field {CV_FIELD!r}")

    async def _score(self, request: web.Request, camera_id: str | None,
                     frame_time: str) -> tuple[LoadedModel, ImageHeader, list[Detection], float]:
        settings = self._settings()
        server = settings.server
        data = await self._image_bytes(request, int(server.max_body_mb * MB))
        try:
            header = inspect(data, server.max_pixels)
        except ImageError as exc:
            raise ApiError(exc.status, exc.kind, str(exc)) from None
        model = self._slot.current
        if model is None:
            raise ApiError(503, "no_model", self._slot.error or "no model is loaded yet",
                           {"Retry-After": "5"})
        assert self._slots is not None
        if not await self._slots.acquire(server.max_concurrent, server.queue_wait_s):
            raise ApiError(503, "busy", f"{server.max_concurrent} inferences are running and "
                           f"none finished within {server.queue_wait_s} s; retry later",
                           {"Retry-After": "1"})
        try:
            loop = asyncio.get_running_loop()
            params = PostProcess.from_settings(settings.thresholds)
            detections, seconds = await loop.run_in_executor(
                self._executor, self._infer, model, data, header, params, settings.events,
                camera_id, frame_time)
        except ImageError as exc:
            raise ApiError(exc.status, exc.kind, str(exc)) from None
        finally:
            await self._slots.release()
        return model, header, detections, seconds

    def _infer(self, model: LoadedModel, data: bytes, header: ImageHeader, params: PostProcess,
               events: EventSettings, camera_id: str | None,
               frame_time: str) -> tuple[list[Detection], float]:
        """Worker thread: decode, detect, and send the detection message."""
        started = time.perf_counter()
        spec = model.adapter.spec
        size = (spec.width, spec.height) if spec.resize != "none" else None
        detections = model.detect(decode(data, header, size), params)
        seconds = time.perf_counter() - started
        self._metrics.inference(seconds)
        self._events.offer(events, camera_id, frame_time,
                           {"name": model.package.name, "version": model.package.version},
                           detections)
        return detections, seconds

    async def score(self, request: web.Request) -> web.Response:
        """POST /score?camera_id=&ts=: image bytes in, detections out."""
        camera_id = _camera_id(request)
        frame_time = _parse_ts(request.query.get("ts"))
        model, header, detections, seconds = await self._score(request, camera_id, frame_time)
        return web.json_response({
            "model": {"name": model.package.name, "version": model.package.version,
                      "format": model.adapter.format},
            "image": {"width": header.width, "height": header.height},
            "inference_ms": round(seconds * 1000, 3),
            "camera_id": camera_id, "ts": frame_time,
            "detections": [d.to_dict() for d in detections],
        })

    async def custom_vision(self, request: web.Request) -> web.Response:
        """The Custom Vision prediction container's answer shape, so its clients work as-is."""
        camera_id = _camera_id(request)
        frame_time = _parse_ts(request.query.get("ts"))
        _, _, detections, _ = await self._score(request, camera_id, frame_time)
        return web.json_response({
            "id": str(uuid.uuid4()),
            "project": request.match_info.get("project", ""),
            "iteration": request.match_info.get("iteration", ""),
            "created": datetime.now(UTC).replace(tzinfo=None).isoformat(),
            "predictions": [{
                "probability": round(d.score, 8), "tagId": d.class_id, "tagName": d.label,
                "boundingBox": {"left": round(d.box[0], 8), "top": round(d.box[1], 8),
                                "width": round(d.box[2] - d.box[0], 8),
                                "height": round(d.box[3] - d.box[1], 8)},
            } for d in detections],
        })

    # -- health and introspection --------------------------------------------------------

    async def healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def readyz(self, request: web.Request) -> web.Response:
        model = self._slot.current
        if model is None:
            raise ApiError(503, "no_model", self._slot.error or "no model is loaded yet")
        return web.json_response({"status": "ready",
                                  "model": f"{model.package.name}:{model.package.version}"})

    async def model(self, request: web.Request) -> web.Response:
        model = self._slot.current
        if model is None:
            raise ApiError(503, "no_model", self._slot.error or "no model is loaded yet")
        return web.json_response(model.info())

    async def metrics(self, request: web.Request) -> web.Response:
        model = self._slot.current
        text = self._metrics.render(model.info() if model else None,
                                    self._slots.busy if self._slots else 0)
        return web.Response(body=text.encode(), headers={"Content-Type": PROMETHEUS_TYPE})
