"""The Web API: /score, health, model and metrics, and the routes other modules mount (the
Custom Vision compatible ones, :mod:`detector_module.customvision_api`).

aiohttp serves it: one small package that gives streaming body reads (so an oversized body
is refused at the limit, not after buffering it), and an event loop that never blocks, since
decoding and inference run in worker threads. Every answer is JSON that passed through
:func:`infra.logs.redact_value` (an error quotes its input, ``/model`` names a source path);
an error is ``{"error": kind, "message": text}``, plus what :attr:`ApiError.fields` adds.
What a request brings is checked in :mod:`detector_module.inputs`.

The server side is bounded too: a connection without a complete request header within
``server.idle_timeout_s`` is closed (aiohttp's keep-alive timer, which also runs from the
connection's start), and a request that is not valid HTTP (a smuggling attempt, a huge
header) is one warning line, ``api.malformed_request``, without a traceback.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from concurrent.futures import Executor
from typing import Any, NamedTuple

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from config.detector import DetectorSettings, EventSettings, ServerSettings
from contracts.detection import Detection
from detector_module.admission import Admission, Superseded
from detector_module.detection import PostProcess
from detector_module.engine import LoadedModel, ModelSlot
from detector_module.events import DetectionEvents
from detector_module.imaging import ImageError, ImageHeader, decode, inspect
from detector_module.inputs import ApiError, camera_id, frame_time, image_bytes
from detector_module.metrics import Metrics
from infra.logs import event, event_with_traceback, redact_value
from infra.prometheus import CONTENT_TYPE
from infra.supervision import Workers

log = logging.getLogger(__name__)

MB = 1024 * 1024
# After an answer that did not read the whole body (413, 408), the rest is read and dropped
# for at most this long, so the client sees the answer rather than a reset; then the
# connection closes (aiohttp's default, 10 s, would let a slow client hold it that long).
LINGER_S = 2.0

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def json_answer(doc: dict[str, Any], status: int = 200,
            headers: dict[str, str] | None = None) -> web.Response:
    """Every JSON answer: redacted first, so no input or path can carry a secret out."""
    return web.json_response(redact_value(doc), status=status, headers=headers)


def _error_response(status: int, kind: str, message: str,
                    headers: dict[str, str] | None = None,
                    fields: dict[str, str] | None = None) -> web.Response:
    response = json_answer({"error": kind, **(fields or {}), "message": message}, status,
                           headers)
    if status == 408:  # the rest of a slow body is not waited for
        response.force_close()
    return response


class ServerLog(logging.LoggerAdapter[logging.Logger]):
    """aiohttp's server logger. A request that is not valid HTTP is the client's fault: one
    warning line with its reason (escaped by the log formatter), never a traceback. Anything
    else aiohttp reports keeps its traceback."""

    def __init__(self) -> None:
        super().__init__(log, {})

    def exception(self, msg: object, *args: object, exc_info: Any = True,
                  **kwargs: Any) -> None:
        self._report(msg, args, exc_info)

    def debug(self, msg: object, *args: object, **kwargs: Any) -> None:
        # aiohttp reports a bad method on a connection's first request at debug level.
        if isinstance(kwargs.get("exc_info"), HttpProcessingError):
            self._report(msg, args, kwargs["exc_info"])

    def _report(self, msg: object, args: tuple[object, ...], exc_info: Any) -> None:
        exc = exc_info if isinstance(exc_info, BaseException) else None
        if isinstance(exc, HttpProcessingError):
            event(log, logging.WARNING, "api.malformed_request",
                  remote=args[0] if args else None, status=exc.code,
                  error=f"{type(exc).__name__}: {exc.message}"[:200])
        elif exc is not None:
            event_with_traceback(log, logging.ERROR, "api.server_error", exc,
                                 message=str(msg)[:200])
        else:
            event(log, logging.ERROR, "api.server_error", message=str(msg)[:200])

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]
                ) -> tuple[Any, MutableMapping[str, Any]]:
        return msg, kwargs


def twin_thresholds(settings: DetectorSettings) -> PostProcess:
    """The twin's ``thresholds``: what /score answers and every detection message holds."""
    return PostProcess.from_settings(settings.thresholds)


class Scored(NamedTuple):
    """One scored image: the model that scored it, its header, what it found, how long."""

    model: LoadedModel
    header: ImageHeader
    detections: list[Detection]
    seconds: float


class Api:
    """Handlers over the shared state; ``settings()`` returns the settings in force."""

    def __init__(self, settings: Callable[[], DetectorSettings], slot: ModelSlot,
                 events: DetectionEvents, metrics: Metrics, executor: Executor,
                 workers: Workers) -> None:
        self._settings = settings
        self._slot = slot
        self._events = events
        self._metrics = metrics
        self._executor = executor
        self._workers = workers
        self._admission: Admission | None = None
        self._mounted: list[web.RouteDef] = []

    def mount(self, routes: Iterable[web.RouteDef]) -> None:
        """Serve more routes (the Custom Vision ones) beside /score; before ``runner``."""
        self._mounted += routes

    def runner(self, server: ServerSettings) -> web.AppRunner:
        """The server: no automatic decompression (see inputs), idle connections closed
        after ``idle_timeout_s``, in-flight requests given a few seconds at a stop."""
        return web.AppRunner(self.app(server), access_log=None, handle_signals=False,
                             shutdown_timeout=5.0, keepalive_timeout=server.idle_timeout_s,
                             lingering_time=LINGER_S, auto_decompress=False,
                             logger=ServerLog())

    def app(self, server: ServerSettings) -> web.Application:
        # Bodies are read by inputs.read_body against the live limit; aiohttp's own limit
        # (for reads that bypass it) is the one in force at start.
        app = web.Application(middlewares=[self._errors],
                              client_max_size=int(server.max_body_mb * MB) + 1)
        app.on_startup.append(self._startup)
        app.add_routes([
            web.post("/score", self.score),
            *self._mounted,
            web.get("/healthz", self.healthz),
            web.get("/readyz", self.readyz),
            web.get("/model", self.model),
            web.get("/metrics", self.metrics),
        ])
        return app

    async def _startup(self, app: web.Application) -> None:
        self._admission = Admission()  # created on the serving loop it belongs to

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        route = request.match_info.route.resource
        name = route.canonical if route is not None else "unmatched"
        try:
            response = await handler(request)
        except ApiError as exc:
            self._metrics.error(exc.kind)
            response = _error_response(exc.status, exc.kind, exc.message, exc.headers,
                                       exc.fields)
        except web.HTTPException as exc:
            kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status, "http_error")
            self._metrics.error(kind)
            response = _error_response(exc.status, kind, exc.reason,
                                       {k: v for k, v in exc.headers.items()
                                        if k.lower() == "allow"})
        except Exception as exc:  # noqa: BLE001 - the client gets JSON, the log the traceback
            self._metrics.error("internal")
            event_with_traceback(log, logging.ERROR, "api.internal_error", exc,
                                 path=request.path, error=repr(exc)[:200])
            response = _error_response(500, "internal", "internal error while scoring; see "
                                       "the module log")
        self._metrics.request(name, response.status)
        return response

    # -- scoring -------------------------------------------------------------------------

    @property
    def settings(self) -> DetectorSettings:
        return self._settings()

    def serving(self) -> LoadedModel:
        """The model that answers a request; 503 (retry soon) while there is none."""
        model = self._slot.current
        if model is None:
            raise ApiError(503, "no_model", self._slot.error or "no model is loaded yet",
                           {"Retry-After": "5"})
        return model

    async def upload(self, request: web.Request) -> bytes:
        """The image a request carries, under the body limits in force."""
        server = self._settings().server
        return await image_bytes(request, int(server.max_body_mb * MB), server.body_timeout_s)

    async def detect(self, data: bytes, camera: str | None, stamp: str,
                     thresholds: Callable[[DetectorSettings], PostProcess] = twin_thresholds
                     ) -> Scored:
        """Score image bytes: pixels checked, a bounded slot, inference on a worker thread.
        ``thresholds`` gives those of the answer; the detection message always follows the
        twin's ``thresholds``."""
        settings = self._settings()
        server = settings.server
        try:
            header = inspect(data, server.max_pixels)
        except ImageError as exc:
            raise ApiError(exc.status, exc.kind, str(exc)) from None
        model = self.serving()
        assert self._admission is not None
        try:
            admitted = await self._admission.acquire(camera, server.max_concurrent,
                                                     server.queue_wait_s)
        except Superseded:
            raise ApiError(503, "busy", f"a newer frame of camera {camera} took this one's "
                           "place in the queue", {"Retry-After": "1"}) from None
        if not admitted:
            raise ApiError(503, "busy", f"{server.max_concurrent} inferences are running and "
                           f"none finished within {server.queue_wait_s} s; retry later",
                           {"Retry-After": "1"})
        try:
            loop = asyncio.get_running_loop()
            detections, seconds = await loop.run_in_executor(
                self._executor, self._infer, model, data, header, thresholds(settings),
                twin_thresholds(settings), settings.events, camera, stamp)
        except ImageError as exc:
            raise ApiError(exc.status, exc.kind, str(exc)) from None
        finally:
            self._admission.release()
        return Scored(model, header, detections, seconds)

    def _infer(self, model: LoadedModel, data: bytes, header: ImageHeader,
               thresholds: PostProcess, twin: PostProcess, events: EventSettings,
               camera: str | None, stamp: str) -> tuple[list[Detection], float]:
        """Worker thread: decode, detect, and send the detection message."""
        started = time.perf_counter()
        spec = model.adapter.spec
        size = (spec.width, spec.height) if spec.resize != "none" else None
        detections = model.detect(decode(data, header, size), thresholds)
        seconds = time.perf_counter() - started
        self._metrics.inference(seconds)
        self._events.offer(events, camera, stamp,
                           {"name": model.package.name, "version": model.package.version},
                           [d for d in detections if twin.admits(d)])
        return detections, seconds

    async def score(self, request: web.Request) -> web.Response:
        """POST /score?camera_id=&ts=: image bytes in, detections out."""
        camera, stamp = camera_id(request), frame_time(request.query.get("ts"))
        scored = await self.detect(await self.upload(request), camera, stamp)
        width, height = scored.header.shown_size
        model = scored.model
        return json_answer({
            "model": {"name": model.package.name, "version": model.package.version,
                      "format": model.adapter.format},
            "image": {"width": width, "height": height},
            "inference_ms": round(scored.seconds * 1000, 3),
            "camera_id": camera, "ts": stamp,
            "detections": [d.to_dict() for d in scored.detections],
        })

    # -- health and introspection --------------------------------------------------------

    async def healthz(self, request: web.Request) -> web.Response:
        """200 while every worker runs; else 503 naming those that do not (restarting after
        a failure, or given up), so the container's health check sees it."""
        stopped = self._workers.not_running()
        if not stopped:
            return json_answer({"status": "alive"})
        return json_answer({"status": "degraded", "notRunning": stopped,
                        "workers": {name: state for name, state in
                                    self._workers.health().items() if name in stopped}}, 503)

    async def readyz(self, request: web.Request) -> web.Response:
        model = self._slot.current
        if model is None:
            raise ApiError(503, "no_model", self._slot.error or "no model is loaded yet")
        return json_answer({"status": "ready",
                        "model": f"{model.package.name}:{model.package.version}"})

    async def model(self, request: web.Request) -> web.Response:
        model = self._slot.current
        if model is None:
            raise ApiError(503, "no_model", self._slot.error or "no model is loaded yet")
        return json_answer(model.info())

    async def metrics(self, request: web.Request) -> web.Response:
        model = self._slot.current
        text = self._metrics.render(model.info() if model else None,
                                    self._admission.busy if self._admission else 0)
        return web.Response(body=text.encode(), headers={"Content-Type": CONTENT_TYPE})
