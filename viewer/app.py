"""The viewer's HTTP server: the page, the clip API, the video proxy, reviews and export.

aiohttp, like the detector's Web API. Every error is JSON ``{"error": kind, "message": text}``:
a bad id, filter or body is 400, an unknown clip 404, a review written in between 409, the
blob endpoint away 503 naming the endpoint (never the key); an unexpected failure is logged
and answered 500 without a traceback. Blob names are only ever built from checked clip ids.
What storage holds is untrusted too: a sidecar that does not follow the clip contract is
answered as unreadable (the video still plays), and no answer carries a non-finite number
(``NaN`` is not JSON, and one would break the page's whole list).
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from contracts.blob_layout import CONTENT_TYPES, BadClipId, ClipId, parse
from contracts.clip import THUMBNAIL_SUFFIX, VIDEO_SUFFIX
from infra.logs import event
from viewer import auth, export, guard, reviews
from viewer.catalog import Catalog, Filters
from viewer.ranges import Unsatisfiable, parse_range
from viewer.settings import ViewerSettings, is_loopback
from viewer.store import AzureStore, Store, StoreError, Unavailable
from viewer.summary import read_sidecar

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
STORE: web.AppKey[Store] = web.AppKey("store", Store)  # type: ignore[type-abstract]
CATALOG: web.AppKey[Catalog] = web.AppKey("catalog", Catalog)
SETTINGS: web.AppKey[ViewerSettings] = web.AppKey("settings", ViewerSettings)
_CHUNK = 256 * 1024


def _dumps(value: Any) -> str:
    # Every value has been checked where it entered (summaries, the sidecar model), so a
    # non-finite number here is a bug: a loud 500 rather than NaN, which is not JSON.
    return json.dumps(value, allow_nan=False)


def answer(doc: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON answer that is strictly JSON (no NaN, no Infinity)."""
    return web.json_response(doc, status=status, headers=headers, dumps=_dumps)


def _error(status: int, kind: str, message: str,
           headers: dict[str, str] | None = None) -> web.Response:
    return answer({"error": kind, "message": message}, status, headers)


@web.middleware
async def errors(request: web.Request, handler: auth.Handler) -> web.StreamResponse:
    """Turn every failure into a JSON answer; refuse path tricks before any routing."""
    path = request.raw_path.split("?", 1)[0]
    if ".." in path or "\\" in path or "%" in path or "//" in path:
        return _error(400, "bad_request", "path tricks ('..', '\\', '%', '//') are refused")
    try:
        return await handler(request)
    except BadClipId as exc:
        return _error(400, "bad_request", str(exc))
    except StoreError as exc:
        if isinstance(exc, Unavailable):
            event(log, logging.WARNING, "storage.unavailable", message=str(exc))
        return _error(exc.status, exc.kind, str(exc))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status, "http_error")
        return _error(exc.status, kind, exc.reason)
    except (ConnectionResetError, asyncio.CancelledError):
        raise  # the browser went away (a <video> does that all the time)
    except Exception as exc:  # noqa: BLE001 - the client gets JSON, the log the traceback
        log.error("viewer.internal_error", exc_info=exc,
                  extra={"fields": {"path": request.path, "error": type(exc).__name__}})
        return _error(500, "internal", "internal error; see the viewer's log")


def _clip(request: web.Request) -> ClipId:
    return parse(request.match_info["clip"])


async def index(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})


async def health(request: web.Request) -> web.Response:
    store = request.app[STORE]
    await store.folders("")
    return answer({"ok": True, "storage": store.describe})


async def list_clips(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    filters = Filters.from_query(request.query)
    try:
        limit = int(request.query.get("limit") or settings.page_size)
    except ValueError:
        raise BadClipId("limit must be a whole number") from None
    if not 1 <= limit <= 500:
        raise BadClipId("limit must be between 1 and 500")
    page = await request.app[CATALOG].page(filters, limit, request.query.get("cursor") or None)
    return answer(page.to_json())


async def clip_detail(request: web.Request) -> web.Response:
    clip = _clip(request)
    store = request.app[STORE]
    summary = await request.app[CATALOG].clip(clip)
    sidecar, problem = await read_sidecar(store, clip)
    review, etag = await reviews.read(store, clip)
    return answer({"clip": summary.to_json(),
                   "sidecar": sidecar.model_dump(mode="json") if sidecar else None,
                   "sidecar_problem": problem,
                   "review": review.to_json() if review else None, "review_etag": etag})


async def _send_blob(request: web.Request, name: str, content_type: str) -> web.StreamResponse:
    """A blob through the viewer, honouring one Range (206 / 416)."""
    store = request.app[STORE]
    size = await store.size(name)
    headers = {"Accept-Ranges": "bytes", "Content-Type": content_type,
               "Cache-Control": "private, max-age=300"}
    try:
        wanted = parse_range(request.headers.get("Range"), size)
    except Unsatisfiable:
        return _error(416, "range_not_satisfiable", f"the blob has {size} bytes",
                      {"Content-Range": f"bytes */{size}", "Accept-Ranges": "bytes"})
    first, last = wanted if wanted is not None else (0, size - 1)
    length = max(0, last - first + 1)
    response = web.StreamResponse(status=206 if wanted is not None else 200, headers=headers)
    if wanted is not None:
        response.headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    response.content_length = length
    chunks = store.stream(name, first, length) if length else None
    # The first chunk before the headers: a storage failure is still a clean JSON answer.
    head = await anext(chunks, b"") if chunks is not None else b""
    await response.prepare(request)
    if head:
        await response.write(head)
    if chunks is not None:
        try:
            async for chunk in chunks:
                await response.write(chunk)
        except StoreError as exc:  # headers are out: all we can do is cut the body short
            event(log, logging.WARNING, "video.stream_failed", blob=name, message=str(exc))
            raise ConnectionResetError(str(exc)) from None
    await response.write_eof()
    return response


async def _send_part(request: web.Request, suffix: str) -> web.StreamResponse:
    return await _send_blob(request, _clip(request).blob(suffix), CONTENT_TYPES[suffix])


async def video(request: web.Request) -> web.StreamResponse:
    return await _send_part(request, VIDEO_SUFFIX)


async def thumbnail(request: web.Request) -> web.StreamResponse:
    return await _send_part(request, THUMBNAIL_SUFFIX)


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise BadClipId("the body must be JSON (UTF-8)") from None
    except RecursionError:
        raise BadClipId("the body is nested too deeply") from None
    if not isinstance(body, dict):
        raise BadClipId("the body must be a JSON object")
    return body


async def put_review(request: web.Request) -> web.Response:
    clip = _clip(request)
    body = await _json_body(request)
    state, note = reviews.check(body.get("state"), body.get("note"))
    if "etag" not in body:
        raise BadClipId("etag is required: the review_etag you loaded, or null if the clip "
                        "had no review")
    loaded = reviews.check_etag(body["etag"])
    await request.app[CATALOG].clip(clip)  # 404 for an unknown clip, never a stray review
    review, etag = await reviews.write(request.app[STORE], clip, state, note, loaded)
    return answer({"review": review.to_json(), "review_etag": etag})


async def bulk_review(request: web.Request) -> web.Response:
    body = await _json_body(request)
    state, note = reviews.check(body.get("state"), body.get("note"))
    results = await reviews.bulk(request.app[STORE], request.app[CATALOG], body.get("clips"),
                                 state, note)
    return answer({"results": results, "ok": sum(1 for r in results if r["ok"]),
                   "failed": sum(1 for r in results if not r["ok"])})


async def export_zip(request: web.Request) -> web.StreamResponse:
    """The training set as one zip (images/ + train.jsonl), built in a temporary folder."""
    try:
        states = export.parse_states(request.query.get("state") or
                                     ",".join(export.DEFAULT_STATES))
    except ValueError as exc:
        raise BadClipId(str(exc)) from None
    folder = Path(tempfile.mkdtemp(prefix="viewer-export-"))
    try:
        await export.export(request.app[CATALOG], request.app[STORE], folder / "set", states,
                            url_prefix=request.query.get("url_prefix", ""))
        archive = folder / "training-set.zip"
        await asyncio.to_thread(_zip, folder / "set", archive)
        response = web.StreamResponse(headers={
            "Content-Type": "application/zip",
            "Content-Disposition": 'attachment; filename="graffiti-training-set.zip"'})
        response.content_length = archive.stat().st_size
        await response.prepare(request)
        with archive.open("rb") as source:
            while chunk := source.read(_CHUNK):
                await response.write(chunk)
        await response.write_eof()
        return response
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _zip(source: Path, archive: Path) -> None:
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:  # JPEGs do not compress
        for path in sorted(source.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(source).as_posix())


class BadRequestLines(logging.Filter):
    """aiohttp logs a request it cannot parse (a smuggling attempt, a header too large, a
    control character) with a traceback, and the traceback text quotes the client's bytes. A
    client must not be able to write lines into the viewer's log: such a record becomes one
    ``http.bad_request`` line whose fields are escaped like every other field."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            detail = (str(exc.message).splitlines() or [""])[0][:200]
            record.msg, record.args, record.exc_info = "http.bad_request", (), None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.fields = {"status": exc.code, "error": type(exc).__name__, "detail": detail}
        return True


def _one_line_bad_requests() -> None:
    server_log = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, BadRequestLines) for f in server_log.filters):
        server_log.addFilter(BadRequestLines())


def make_app(settings: ViewerSettings, store: Store | None = None) -> web.Application:
    """The viewer application on ``store`` (default: the container the settings name)."""
    _one_line_bad_requests()
    token = settings.token.get_secret_value() if settings.token else None
    app = web.Application(middlewares=[
        errors, guard.middleware(is_loopback(settings.host), settings.allowed_hosts),
        auth.middleware(token)], client_max_size=1024 * 1024)
    store = store or AzureStore(settings)
    app[STORE] = store
    app[CATALOG] = Catalog(store, settings.index_ttl_s)
    app[SETTINGS] = settings

    async def close(app: web.Application) -> None:
        await app[STORE].close()

    app.on_cleanup.append(close)
    app.add_routes([
        web.get("/", index),
        web.get("/api/health", health),
        web.get("/api/clips", list_clips),
        web.get("/api/clips/{clip:.+}", clip_detail),
        web.get("/api/video/{clip:.+}", video),
        web.get("/api/thumb/{clip:.+}", thumbnail),
        web.put("/api/reviews/{clip:.+}", put_review),
        web.post("/api/reviews", bulk_review),
        web.get("/api/export.zip", export_zip),
        web.static("/static", STATIC, append_version=False),
    ])
    return app
