"""A package server for the update tests: stdlib ThreadingHTTPServer on 127.0.0.1.

Serves registered bytes under a path with ``Range``/``If-Range`` support and an ETag, logs
every request's Range header, can cut the next N responses after a byte count (closing the
socket mid-body), can pace its output (bytes per second) to keep a download running, and can
serve a body that never ends (no Content-Length, bytes until the client hangs up).
"""

from __future__ import annotations

import hashlib
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from local_run.processes import free_port


class PackageServer:
    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.cut_after: int | None = None  # body bytes sent before the socket is closed
        self.cuts_left = 0
        self.rate: float | None = None  # bytes per second, None = as fast as possible
        self.slow_paths: set[str] | None = None  # rate applies only to these, if set
        self.sent_total = 0
        self.endless: set[str] = set()  # paths whose body never ends
        self.port = free_port()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                path = self.path.split("?")[0]
                server.requests.append((self.path, self.headers.get("Range")))
                if path in server.endless:
                    self._endless()
                    return
                data = server.files.get(path)
                if data is None:
                    self.send_error(404)
                    return
                etag = '"' + hashlib.md5(data).hexdigest() + '"'  # noqa: S324
                start, status = 0, 200
                rng = self.headers.get("Range")
                if_range = self.headers.get("If-Range")
                if rng and (if_range is None or if_range == etag):
                    start = int(rng.removeprefix("bytes=").split("-")[0])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    status = 206
                body = data[start:]
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("ETag", etag)
                self.send_header("Accept-Ranges", "bytes")
                if status == 206:
                    self.send_header("Content-Range",
                                     f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()
                limit = len(body)
                cut = False
                if server.cuts_left > 0 and server.cut_after is not None:
                    server.cuts_left -= 1
                    limit, cut = min(limit, server.cut_after), True
                step = 16 * 1024
                for offset in range(0, limit, step):
                    piece = body[offset:min(offset + step, limit)]
                    try:
                        self.wfile.write(piece)
                        self.wfile.flush()
                    except OSError:
                        return
                    server.sent_total += len(piece)
                    if server.rate and (server.slow_paths is None
                                        or path in server.slow_paths):
                        time.sleep(len(piece) / server.rate)
                if cut:
                    self.close_connection = True
                    self.connection.shutdown(2)

            def _endless(self) -> None:
                self.send_response(200)
                self.send_header("Connection", "close")
                self.end_headers()
                self.close_connection = True
                block = b"PK" + bytes(65534)
                try:
                    while True:
                        self.wfile.write(block)
                        server.sent_total += len(block)
                except OSError:
                    return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> PackageServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def add(self, path: str, data: bytes) -> str:
        self.files[path] = data
        return f"http://127.0.0.1:{self.port}{path}?sv=2021&sig=SECRETSIG"
