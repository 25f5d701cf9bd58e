"""What a request brings (body, query values, route parts), checked once before any use.

Bodies are read chunk by chunk against the limit in force (``server.max_body_mb``) and within
the body deadline (``server.body_timeout_s``), whatever the Content-Length says, so neither an
oversized nor a slow body is ever buffered whole or waited on without end. The server runs
with aiohttp's automatic decompression off and a request with a ``Content-Encoding`` is
refused: an image is compressed already, and a 200 KB gzip body can inflate to 200 MB. A
multipart body is read whole under the same limit and parsed in memory, so no part, whatever
its name, is read past the limit.

Identifiers from the query and the route (``camera_id``, the Custom Vision project and
iteration) follow :mod:`contracts.identifiers`; ``ts`` is parsed so that no value, not even
one at the edge of the datetime range, raises anything but a 400. An error message quotes at
most :data:`EXCERPT` characters of a value.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from email.message import Message

from aiohttp import web

from contracts.identifiers import BadIdentifier, check_identifier

CHUNK = 64 * 1024
RAW_TYPES = ("application/octet-stream",)
CV_FIELD = "imageData"
EXCERPT = 40
_DELIMITER_MAX = 70  # RFC 2046: a boundary is 1 to 70 characters


class ApiError(Exception):
    """An answer other than 200: status, error kind, message and extra headers."""

    def __init__(self, status: int, kind: str, message: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.kind, self.message = status, kind, message
        self.headers = headers or {}
        #: Further fields of the error body: the Custom Vision routes add Custom Vision's
        #: ``code``, which its clients read.
        self.fields: dict[str, str] = {}


def excerpt(value: str) -> str:
    """A value as an error message quotes it: repr, at most :data:`EXCERPT` characters."""
    shown = repr(value)
    return shown if len(shown) <= EXCERPT else shown[:EXCERPT - 3] + "..."


def _bad(message: str) -> ApiError:
    return ApiError(400, "bad_request", message)


# -- query and route ---------------------------------------------------------------------

def frame_time(value: str | None) -> str:
    """The frame time as ISO 8601 UTC: from ``ts`` (ISO 8601 or epoch seconds) or now."""
    if value is None or value == "":
        return datetime.now(UTC).isoformat(timespec="milliseconds")
    try:
        try:
            stamp = datetime.fromtimestamp(float(value), UTC)
        except ValueError:
            stamp = datetime.fromisoformat(value.replace("Z", "+00:00"))
            if stamp.tzinfo is None:
                stamp = stamp.replace(tzinfo=UTC)
        return stamp.astimezone(UTC).isoformat(timespec="milliseconds")
    except ValueError:
        raise _bad(f"ts {excerpt(value)} is neither ISO 8601 nor epoch seconds") from None
    except (OverflowError, OSError):
        raise _bad(f"ts {excerpt(value)} is out of range") from None


def identifier(value: str, what: str) -> str:
    """A query or route value that names something; 400 naming ``what`` unless valid."""
    try:
        return check_identifier(value, what)
    except BadIdentifier as exc:
        raise _bad(str(exc)) from None


def camera_id(request: web.Request) -> str | None:
    value = request.query.get("camera_id") or None
    return None if value is None else identifier(value, "camera_id")


# -- bodies ----------------------------------------------------------------------------

async def _read_limited(read_chunk: Callable[[int], Awaitable[bytes]], limit: int,
                        what: str) -> bytes:
    """Read chunk by chunk and stop at the limit, never buffering an oversized body."""
    chunks, size = [], 0
    while chunk := await read_chunk(CHUNK):
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "body_too_large", f"{what} is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def check_encoding(headers: Mapping[str, str]) -> None:
    """415 unless the body comes as it is: nothing here inflates a compressed body."""
    encoding = headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("", "identity"):
        raise ApiError(415, "unsupported_encoding", f"Content-Encoding {excerpt(encoding)} is "
                       "not accepted: send the image bytes as they are (images are "
                       "compressed already)")


async def read_stream(read_chunk: Callable[[int], Awaitable[bytes]], length: int | None,
                      limit: int, timeout_s: float, what: str = "body") -> bytes:
    """A whole body from ``read_chunk``: at most ``limit`` bytes whatever its declared
    ``length`` says, arrived within ``timeout_s``. A request's body and an image fetched from
    a URL (:mod:`detector_module.image_url`) are both read here, under the same bounds."""
    if length is not None and length > limit:
        raise ApiError(413, "body_too_large", f"{what} of {length} bytes is over the limit "
                       f"of {limit} bytes")
    try:
        async with asyncio.timeout(timeout_s):
            return await _read_limited(read_chunk, limit, what)
    except TimeoutError:
        raise ApiError(408, "body_timeout", f"{what} did not arrive within {timeout_s} s "
                       "(server.body_timeout_s)") from None


async def read_body(request: web.Request, limit: int, timeout_s: float) -> bytes:
    """The whole body: at most ``limit`` bytes, arrived within ``timeout_s``, not encoded."""
    check_encoding(request.headers)
    return await read_stream(request.content.read, request.content_length, limit, timeout_s,
                             "the body")


def _field_name(head: bytes) -> str | None:
    """The ``name`` of a part's Content-Disposition header, if it has one."""
    for line in head.split(b"\r\n"):
        key, _, value = line.partition(b":")
        if key.strip().lower() == b"content-disposition":
            header = Message()
            header["Content-Disposition"] = value.decode("latin-1").strip()
            name = header.get_param("name", header="content-disposition")
            return name if isinstance(name, str) else None
    return None


def multipart_field(body: bytes, content_type: str, field: str) -> bytes:
    """The content of the part named ``field`` of a multipart body held in memory (RFC 2046:
    preamble, then parts each opened by CRLF ``--boundary``, closed by ``--boundary--``)."""
    header = Message()
    header["Content-Type"] = content_type
    boundary = header.get_boundary()
    if not boundary or len(boundary) > _DELIMITER_MAX:
        raise _bad("malformed multipart body: the Content-Type has no valid boundary")
    delimiter = b"--" + boundary.encode("latin-1")
    pos = 0 if body.startswith(delimiter) else body.find(b"\r\n" + delimiter) + 2
    if pos == 1:
        raise _bad("malformed multipart body: no boundary line")
    while True:
        pos += len(delimiter)
        if body.startswith(b"--", pos):
            break
        line_end = body.find(b"\r\n", pos)
        end = body.find(b"\r\n" + delimiter, line_end)
        if line_end < 0 or end < 0:
            raise _bad("malformed multipart body: a part is not closed by a boundary")
        part = body[line_end + 2:end]  # after the CRLF that ends the boundary line
        if part.startswith(b"\r\n"):  # no headers at all
            head, content = b"", part[2:]
        else:
            head, separator, content = part.partition(b"\r\n\r\n")
            if not separator:
                raise _bad("malformed multipart body: a part has no blank line after its "
                           "headers")
        if _field_name(head) == field:
            return content
        pos = end + 2
    raise _bad(f"multipart body has no {field!r} field")


async def image_bytes(request: web.Request, limit: int, timeout_s: float) -> bytes:
    """The image of a request: the raw body, or the multipart field ``imageData``."""
    ctype = request.content_type
    raw = ctype in RAW_TYPES or ctype.startswith("image/")
    if raw or not request.headers.get("Content-Type"):
        return await read_body(request, limit, timeout_s)
    if ctype == "multipart/form-data":
        body = await read_body(request, limit, timeout_s)
        return multipart_field(body, request.headers["Content-Type"], CV_FIELD)
    raise ApiError(415, "unsupported_media", f"content type {excerpt(ctype)} is not accepted: "
                   "send image/jpeg, image/png, image/bmp, application/octet-stream or "
                   f"multipart/form-data with a field {CV_FIELD!r}")
