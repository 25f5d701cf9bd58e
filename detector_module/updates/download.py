"""Resumable, throttled download of one package for narrow, flaky links (stdlib only).

The body streams into ``<key>.part`` beside ``<key>.json`` (URL without its query, ETag,
total, version). After a broken connection, and after a process restart, the download goes
on from the partial file's length with ``Range`` (and ``If-Range`` with the ETag, so a
changed blob restarts from zero instead of mixing two files). Each received block is written
before the next is read, so a cut re-fetches nothing already written. Retries back off
exponentially with equal jitter (:class:`infra.backoff.Backoff`), without end until
``cancelled()`` says the desired version changed. The SAS query string and any user:password
are never logged or stored: see :func:`safe_url`.

The URL comes from the twin, so it is checked before anything is fetched (:func:`check_url`,
one :class:`UrlPolicy`): on IoT Edge a ``file://`` URL must resolve inside one folder (or the
twin could read any file of the container); a host that is, or resolves to, a link-local
address (169.254.0.0/16, fe80::/10: cloud metadata services) is refused unless allowed, and
the connection goes to the very address that was checked, so a second DNS answer cannot
swap it. No download writes more than ``max_bytes``, even when the server never ends the
body.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import os
import socket
import ssl
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from config.detector import ModelRepositorySettings
from infra.addresses import ip_of, is_metadata
from infra.backoff import Backoff
from infra.durable import write_atomic
from infra.logs import event, redact
from infra.throttle import KB, Throttle

log = logging.getLogger(__name__)

CHUNK = 64 * 1024
# How soon a wait (backoff or bandwidth cap) notices that the download is cancelled.
POLL_S = 0.1

Cancelled = Callable[[], bool]
Progress = Callable[[int, int | None], None]
Meta = dict[str, Any]


class DownloadCancelled(Exception):
    """The desired version changed (or the module stops) while downloading."""


class DownloadError(Exception):
    """A failure that retrying will not fix (e.g. 404, 403, file:// missing)."""


class _Retry(Exception):
    """A response worth retrying (5xx, 408, 429, a short body)."""


def safe_url(url: str) -> str:
    """The URL without its query string and fragment (a SAS token lives there) and without
    a user:password before the host."""
    parts = urllib.parse.urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


@dataclass(frozen=True)
class UrlPolicy:
    """Where a model URL may point. ``file_root`` None: any file (local runs, where the
    operator writes the twin file); else only files inside it (IoT Edge)."""

    file_root: Path | None = None
    allow_link_local: bool = False


def _metadata(address: str) -> bool:
    return is_metadata(ip_of(address))


def _file_path(url: str) -> Path:
    return Path(urllib.request.url2pathname(urllib.parse.urlsplit(url).path))


def check_url(url: str, policy: UrlPolicy) -> None:
    """Raise DownloadError (not retried) for a URL the policy does not allow."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "file":
        if policy.file_root is not None:
            path, root = os.path.realpath(_file_path(url)), os.path.realpath(policy.file_root)
            if os.path.commonpath([path, root]) != root:
                raise DownloadError(f"file:// URL {safe_url(url)} is outside "
                                    f"{policy.file_root} (model_repository.file_url_dir): on "
                                    "IoT Edge only files there may be read")
        return
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DownloadError(f"URL {safe_url(url)} is not an http(s):// or file:// URL with a "
                            "host")
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not one
    except ValueError:
        raise DownloadError(f"URL {safe_url(url)} has an invalid port") from None
    try:
        literal = _metadata(parts.hostname)
    except ValueError:
        return  # a name: checked on every connection, against what it resolves to
    if literal and not policy.allow_link_local:
        raise _refused_link_local(url, parts.hostname)


def _refused_link_local(url: str, address: str) -> DownloadError:
    return DownloadError(f"URL {safe_url(url)} points to the link-local address {address} "
                         "or a cloud platform address (cloud metadata services answer there); "
                         "set model_repository.allow_link_local to allow it")


@dataclass(frozen=True)
class DownloadOptions:
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 30.0
    bandwidth_kbps: float = 0.0
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 60.0
    chunk: int = CHUNK
    max_bytes: int = 512 * 1024 * 1024
    policy: UrlPolicy = field(default_factory=UrlPolicy)

    @classmethod
    def from_settings(cls, settings: ModelRepositorySettings, *,
                      edge: bool) -> DownloadOptions:
        """``edge``: the twin comes from the cloud, so file:// URLs are confined."""
        root = (settings.file_url_dir or settings.dir) if edge else None
        return cls(connect_timeout_s=settings.connect_timeout_s,
                   read_timeout_s=settings.read_timeout_s,
                   bandwidth_kbps=settings.bandwidth_kbps,
                   backoff_initial_s=settings.retry.initial_s,
                   backoff_max_s=settings.retry.max_s,
                   max_bytes=int(settings.max_package_mb * 1024 * 1024),
                   policy=UrlPolicy(root, settings.allow_link_local))

    @property
    def block(self) -> int:
        """Bytes read at once: under a cap, at most a quarter second's worth, so the
        throttle paces evenly instead of in bursts."""
        if self.bandwidth_kbps <= 0:
            return self.chunk
        return max(1024, min(self.chunk, int(self.bandwidth_kbps * KB / 4)))


def partial_paths(folder: Path, url: str, version: str | None) -> tuple[Path, Path]:
    key = hashlib.sha256(f"{safe_url(url)}|{version}".encode()).hexdigest()[:24]
    return folder / f"{key}.part", folder / f"{key}.json"


def discard_partial(folder: Path, url: str, version: str | None) -> None:
    for path in partial_paths(folder, url, version):
        path.unlink(missing_ok=True)


def download(url: str, folder: Path, *, version: str | None, options: DownloadOptions,
             cancelled: Cancelled, progress: Progress | None = None) -> Path:
    """Fetch ``url`` into ``folder``; returns the complete ``.part`` file (the caller
    verifies, unpacks and discards it)."""
    check_url(url, options.policy)
    folder.mkdir(parents=True, exist_ok=True)
    part, meta_path = partial_paths(folder, url, version)
    meta = _read_meta(meta_path, url)
    if meta is None:
        part.unlink(missing_ok=True)
        meta = {"url": safe_url(url), "version": version, "etag": None, "total": None}
        write_atomic(meta_path, json.dumps(meta))
    transfer = _Transfer(url, part, meta_path, meta, options, cancelled, progress)
    backoff = Backoff(options.backoff_initial_s, options.backoff_max_s)
    while True:
        if cancelled():
            raise DownloadCancelled()
        try:
            transfer.run()
            return part
        except (DownloadCancelled, DownloadError):
            raise
        except (OSError, http.client.HTTPException, _Retry) as exc:
            wait = backoff.next()
            event(log, logging.WARNING, "model.download_retry", url=safe_url(url),
                  attempt=backoff.attempts, have_bytes=transfer.have(),
                  total=meta.get("total"), error=_describe(exc), retry_in_s=round(wait, 2))
        _pause(wait, cancelled)


def _pause(seconds: float, cancelled: Cancelled) -> None:
    """Sleep, but give up within :data:`POLL_S` once the download is cancelled."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if cancelled():
            raise DownloadCancelled()
        time.sleep(min(POLL_S, left))


def _describe(exc: BaseException) -> str:
    return redact(str(exc) or type(exc).__name__)[:200]


def _read_meta(path: Path, url: str) -> Meta | None:
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) and meta.get("url") == safe_url(url) else None


def _content_range(value: str | None) -> tuple[int, int | None]:
    # "bytes 100-199/1000"
    span, _, size = (value or "").removeprefix("bytes ").partition("/")
    start = span.split("-")[0]
    if not (value or "").startswith("bytes ") or not start.isdigit():
        raise _Retry(f"bad Content-Range {str(value)[:80]!r}")
    return int(start), (int(size) if size.isdigit() else None)


def _address(url: str, options: DownloadOptions) -> tuple[str, int]:
    """The address to connect to: what the host resolves to, every answer checked."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = [str(info[4][0]) for info in answers]
    refused = [a for a in addresses if _metadata(a)]
    if refused and not options.policy.allow_link_local:
        raise _refused_link_local(url, refused[0])
    return addresses[0], port


def _connect(url: str, options: DownloadOptions) -> http.client.HTTPConnection:
    """A connection to the checked address; the Host header and TLS name stay the host's."""
    parts = urllib.parse.urlsplit(url)
    address, port = _address(url, options)
    sock = socket.create_connection((address, port), timeout=options.connect_timeout_s)
    try:
        if parts.scheme == "https":
            sock = ssl.create_default_context().wrap_socket(
                sock, server_hostname=parts.hostname)
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                parts.hostname or "", port, timeout=options.connect_timeout_s)
        else:
            conn = http.client.HTTPConnection(parts.hostname or "", port,
                                              timeout=options.connect_timeout_s)
    except BaseException:
        sock.close()
        raise
    sock.settimeout(options.read_timeout_s)
    conn.sock = sock
    return conn


class _Transfer:
    """One package's bytes into its partial file, one attempt per :meth:`run`. The
    throttle lives as long as the download, so a retry does not reset the rate."""

    def __init__(self, url: str, part: Path, meta_path: Path, meta: Meta,
                 options: DownloadOptions, cancelled: Cancelled,
                 progress: Progress | None) -> None:
        self.url, self.part, self.meta_path, self.meta = url, part, meta_path, meta
        self.options = options
        self.cancelled = cancelled
        self.progress = progress
        self.throttle = Throttle.kbps(options.bandwidth_kbps)

    def have(self) -> int:
        return self.part.stat().st_size if self.part.exists() else 0

    def run(self) -> None:
        if self.url.startswith("file://"):
            self._fetch_file()
        else:
            self._fetch_http()

    def _save_meta(self, **fields: object) -> None:
        self.meta.update(fields)
        write_atomic(self.meta_path, json.dumps(self.meta))

    def _check_size(self, size: int | None) -> None:
        if size is not None and size > self.options.max_bytes:
            raise DownloadError(f"the package is over {self.options.max_bytes} bytes "
                                f"(model_repository.max_package_mb): stopped at {size}")

    def _pump(self, read: Callable[[int], bytes], out: BinaryIO, have: int,
              total: int | None) -> int:
        self._check_size(max(have, total or 0))
        while True:
            if self.cancelled():
                raise DownloadCancelled()
            block = read(min(self.options.block, self.options.max_bytes + 1 - have))
            if not block:
                return have
            self._check_size(have + len(block))
            out.write(block)
            out.flush()
            have += len(block)
            if self.progress is not None:
                self.progress(have, total)
            _pause(self.throttle.reserve(len(block)), self.cancelled)

    def _fetch_file(self) -> None:
        source = _file_path(self.url)
        if not source.is_file():
            raise DownloadError(f"no file at {source}")
        total = source.stat().st_size
        self.meta["total"] = total
        have = self.have()
        if have > total:
            self.part.unlink()
            have = 0
        with source.open("rb") as src, self.part.open("ab") as out:
            src.seek(have)
            self._pump(src.read, out, have, total)

    def _request(self, conn: http.client.HTTPConnection, have: int) -> http.client.HTTPResponse:
        """GET from ``have`` on (If-Range: a changed blob comes whole, not spliced)."""
        parts = urllib.parse.urlsplit(self.url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        headers = {"User-Agent": "graffiti-edge-detector", "Accept-Encoding": "identity"}
        if have:
            headers["Range"] = f"bytes={have}-"
            if self.meta.get("etag"):
                headers["If-Range"] = self.meta["etag"]
        conn.request("GET", target or "/", headers=headers)
        response = conn.getresponse()
        status = response.status
        if status == 416 and have:
            # Range past the end: the partial is stale or complete; start over to be sure.
            self.part.unlink(missing_ok=True)
            raise _Retry("416 range not satisfiable, restarting from zero")
        if status in (408, 429) or status >= 500:
            raise _Retry(f"HTTP {status}")
        if status not in (200, 206):
            raise DownloadError(f"HTTP {status} {response.reason} for {safe_url(self.url)}")
        return response

    def _fetch_http(self) -> None:
        have = self.have()
        if self.meta.get("total") is not None and have == self.meta["total"]:
            return
        conn = _connect(self.url, self.options)
        try:
            response = self._request(conn, have)
            etag = response.getheader("ETag")
            if response.status == 206:
                start, total = _content_range(response.getheader("Content-Range"))
                if start != have:
                    self.part.unlink(missing_ok=True)
                    raise _Retry(f"server resumed at {start}, not {have}")
                mode = "ab"
            else:
                total = response.length  # the parsed Content-Length; None when absent
                have, mode = 0, "wb"
            if self.meta.get("total") != total or (etag and self.meta.get("etag") != etag):
                self._save_meta(total=total, etag=etag or self.meta.get("etag"))
            event(log, logging.INFO, "model.download_started", url=safe_url(self.url),
                  status=response.status, offset=have, total=total)
            with self.part.open(mode) as out:
                have = self._pump(response.read, out, have, total)
            if total is not None and have != total:
                raise _Retry(f"connection closed at {have} of {total} bytes")
        finally:
            conn.close()
