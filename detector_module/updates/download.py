"""Resumable, throttled download of one package for narrow, flaky links (stdlib only).

The body streams into ``<key>.part`` beside ``<key>.json`` (URL without its query, ETag,
total, version). After a broken connection, and after a process restart, the download goes
on from the partial file's length with ``Range`` (and ``If-Range`` with the ETag, so a
changed blob restarts from zero instead of mixing two files). Each received block is written
before the next is read, so a cut re-fetches nothing already written. Retries back off
exponentially with full jitter, without end until ``cancelled()`` says the desired version
changed. The SAS query string is never logged or stored: see :func:`safe_url`.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import random
import shutil
import ssl
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from infra.logs import event

log = logging.getLogger(__name__)

CHUNK = 64 * 1024


class DownloadCancelled(Exception):
    """The desired version changed (or the module stops) while downloading."""


class DownloadError(Exception):
    """A failure that retrying will not fix (e.g. 404, 403, file:// missing)."""


def safe_url(url: str) -> str:
    """The URL without its query string and fragment (a SAS token lives there)."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


@dataclass(frozen=True)
class DownloadOptions:
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 30.0
    bandwidth_kbps: float = 0.0
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 60.0
    chunk: int = CHUNK


Progress = Callable[[int, int | None], None]


class Throttle:
    """Keeps the average rate at or under ``kbps`` kB/s (1 kB = 1024 bytes)."""

    def __init__(self, kbps: float) -> None:
        self.rate = kbps * 1024.0
        self.start = time.monotonic()
        self.sent = 0

    def __call__(self, n: int, cancelled: Callable[[], bool]) -> None:
        if self.rate <= 0:
            return
        self.sent += n
        due = self.start + self.sent / self.rate
        while (wait := due - time.monotonic()) > 0:
            if cancelled():
                raise DownloadCancelled()
            time.sleep(min(wait, 0.2))


def partial_paths(folder: Path, url: str, version: str | None) -> tuple[Path, Path]:
    key = hashlib.sha256(f"{safe_url(url)}|{version}".encode()).hexdigest()[:24]
    return folder / f"{key}.part", folder / f"{key}.json"


def discard_partial(folder: Path, url: str, version: str | None) -> None:
    for path in partial_paths(folder, url, version):
        path.unlink(missing_ok=True)


def download(url: str, folder: Path, *, version: str | None, options: DownloadOptions,
             cancelled: Callable[[], bool], progress: Progress | None = None) -> Path:
    """Fetch ``url`` into ``folder``; returns the complete ``.part`` file (caller moves it)."""
    folder.mkdir(parents=True, exist_ok=True)
    part, meta_path = partial_paths(folder, url, version)
    meta = _read_meta(meta_path, url)
    if meta is None:
        part.unlink(missing_ok=True)
        meta = {"url": safe_url(url), "version": version, "etag": None, "total": None}
        _write_meta(meta_path, meta)
    delay = options.backoff_initial_s
    attempt = 0
    throttle = Throttle(options.bandwidth_kbps)
    while True:
        if cancelled():
            raise DownloadCancelled()
        attempt += 1
        try:
            if url.startswith("file://"):
                _fetch_file(url, part, meta, options, cancelled, progress, throttle)
            else:
                _fetch_http(url, part, meta, meta_path, options, cancelled, progress, throttle)
            return part
        except (DownloadCancelled, DownloadError):
            raise
        except (OSError, http.client.HTTPException, _Retry) as exc:
            have = part.stat().st_size if part.exists() else 0
            wait = random.uniform(0, delay)  # full jitter
            event(log, logging.WARNING, "model.download_retry", url=safe_url(url),
                  attempt=attempt, have_bytes=have, total=meta.get("total"),
                  error=_describe(exc), retry_in_s=round(wait, 2))
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                if cancelled():
                    raise DownloadCancelled() from None
                time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, options.backoff_max_s)


class _Retry(Exception):
    """A response worth retrying (5xx, 408, 429, a short body)."""


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text.replace("?", " ").split(" sig=")[0][:200]


def _read_meta(path: Path, url: str) -> dict | None:
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return meta if meta.get("url") == safe_url(url) else None


def _write_meta(path: Path, meta: dict) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(meta))
    os.replace(tmp, path)


def _pump(read: Callable[[int], bytes], out, have: int, total: int | None,
          options: DownloadOptions, cancelled: Callable[[], bool], progress: Progress | None,
          throttle: Throttle) -> int:
    chunk = options.chunk
    if options.bandwidth_kbps > 0:
        chunk = max(1024, min(chunk, int(options.bandwidth_kbps * 1024 / 4)))
    while True:
        if cancelled():
            raise DownloadCancelled()
        block = read(chunk)
        if not block:
            return have
        out.write(block)
        out.flush()
        have += len(block)
        if progress is not None:
            progress(have, total)
        throttle(len(block), cancelled)


def _fetch_file(url: str, part: Path, meta: dict, options: DownloadOptions,
                cancelled: Callable[[], bool], progress: Progress | None,
                throttle: Throttle) -> None:
    source = Path(urllib.request.url2pathname(urllib.parse.urlsplit(url).path))
    if not source.is_file():
        raise DownloadError(f"no file at {source}")
    total = source.stat().st_size
    meta["total"] = total
    have = part.stat().st_size if part.exists() else 0
    if have > total:
        part.unlink()
        have = 0
    with source.open("rb") as src, part.open("ab") as out:
        src.seek(have)
        _pump(src.read, out, have, total, options, cancelled, progress, throttle)


def _connect(url: str, options: DownloadOptions) -> http.client.HTTPConnection:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https":
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            parts.hostname or "", parts.port, timeout=options.connect_timeout_s,
            context=ssl.create_default_context())
    else:
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port,
                                          timeout=options.connect_timeout_s)
    conn.connect()
    assert conn.sock is not None
    conn.sock.settimeout(options.read_timeout_s)
    return conn


def _fetch_http(url: str, part: Path, meta: dict, meta_path: Path, options: DownloadOptions,
                cancelled: Callable[[], bool], progress: Progress | None,
                throttle: Throttle) -> None:
    have = part.stat().st_size if part.exists() else 0
    if meta.get("total") is not None and have == meta["total"]:
        return
    parts = urllib.parse.urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    headers = {"User-Agent": "graffiti-edge-detector", "Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
        if meta.get("etag"):
            headers["If-Range"] = meta["etag"]
    conn = _connect(url, options)
    try:
        conn.request("GET", target or "/", headers=headers)
        response = conn.getresponse()
        status = response.status
        if status == 416 and have:
            # Range past the end: the partial is stale or complete; start over to be sure.
            part.unlink(missing_ok=True)
            raise _Retry("416 range not satisfiable, restarting from zero")
        if status in (408, 429) or status >= 500:
            raise _Retry(f"HTTP {status}")
        if status not in (200, 206):
            raise DownloadError(f"HTTP {status} {response.reason} for {safe_url(url)}")
        length = response.getheader("Content-Length")
        etag = response.getheader("ETag")
        if status == 206:
            start, total = _content_range(response.getheader("Content-Range"))
            if start != have:
                part.unlink(missing_ok=True)
                raise _Retry(f"server resumed at {start}, not {have}")
            mode = "ab"
        else:
            total = int(length) if length is not None else None
            have, mode = 0, "wb"
        if meta.get("total") != total or (etag and meta.get("etag") != etag):
            meta.update(total=total, etag=etag or meta.get("etag"))
            _write_meta(meta_path, meta)
        event(log, logging.INFO, "model.download_started", url=safe_url(url), status=status,
              offset=have, total=total)
        with part.open(mode) as out:
            have = _pump(response.read, out, have, total, options, cancelled, progress,
                         throttle)
        if total is not None and have != total:
            raise _Retry(f"connection closed at {have} of {total} bytes")
    finally:
        conn.close()


def _content_range(value: str | None) -> tuple[int, int | None]:
    # "bytes 100-199/1000"
    if not value or not value.startswith("bytes "):
        raise _Retry(f"bad Content-Range {value!r}")
    span, _, size = value[6:].partition("/")
    start = int(span.split("-")[0])
    return start, (int(size) if size.isdigit() else None)


def move(part: Path, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(part), dest)
    return dest
