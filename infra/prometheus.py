"""Prometheus text exposition (format 0.0.4), written by hand, and a small endpoint serving it.

The IoT Edge metrics collector scrapes this format; a handful of gauges and counters do not
justify a client library. The detector serves its text from its own Web API; a module without
one (the camera) uses :class:`MetricsEndpoint`, which answers ``GET /metrics`` and nothing else.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from infra.logs import event

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: A scraper that has not sent its request line and headers by then is disconnected, so a slow
#: or idle client holds one thread for a few seconds at most.
CLIENT_TIMEOUT_S = 5.0
Sample = tuple[Mapping[str, object], float | int]


def labels(**values: object) -> str:
    """``{a="1",b="x"}`` with the format's escapes (backslash, newline, double quote)."""
    def esc(v: object) -> str:
        return str(v).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return "{" + ",".join(f'{k}="{esc(v)}"' for k, v in values.items()) + "}"


def family(name: str, kind: str, help_text: str, samples: Iterable[Sample]) -> list[str]:
    """The lines of one metric family: its HELP and TYPE, then one line per labelled sample."""
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    lines += [f"{name}{labels(**dict(names))} {value}" for names, value in samples]
    return lines


class MetricsEndpoint:
    """``GET /metrics`` on ``host:port``, answered with ``render()``; every other path 404,
    every other method 405. Runs in its own daemon threads, so a scrape never waits on the
    module's work, and ``render`` only reads what the module already keeps."""

    def __init__(self, host: str, port: int, render: Callable[[], str]) -> None:
        self._render = render
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            timeout = CLIENT_TIMEOUT_S
            server_version = "graffiti-edge"
            sys_version = ""

            def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
                if self.path.split("?", 1)[0] != "/metrics":
                    self._answer(HTTPStatus.NOT_FOUND, "only /metrics is served\n")
                    return
                try:
                    text = endpoint._render()
                except Exception as exc:
                    event(log, logging.ERROR, "metrics.render_failed",
                          error=f"{type(exc).__name__}: {exc}")
                    self._answer(HTTPStatus.SERVICE_UNAVAILABLE, "metrics unavailable\n")
                    return
                self._answer(HTTPStatus.OK, text, CONTENT_TYPE)

            def do_HEAD(self) -> None:  # noqa: N802
                self._answer(HTTPStatus.METHOD_NOT_ALLOWED, "")

            do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD  # noqa: N815

            def _answer(self, status: HTTPStatus, text: str,
                        content_type: str = "text/plain; charset=utf-8") -> None:
                body = text.encode()
                self.send_response(status)
                if status == HTTPStatus.METHOD_NOT_ALLOWED:
                    self.send_header("Allow", "GET")
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Connection", "close")
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)
                self.close_connection = True

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                """Scrapes come every few seconds: not worth a log line each."""

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics",
                                        daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
