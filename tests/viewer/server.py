"""The viewer as a real process (``python -m viewer``) and a raw HTTP client for it."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from local_run.processes import free_port, stop_process, wait_for_port

ROOT = Path(__file__).resolve().parents[2]


class ViewerProcess:
    """One ``python -m viewer serve`` on a free port of 127.0.0.1."""

    def __init__(self, log_file: Path, connection_string: str, *args: str,
                 env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.log_file = log_file
        full_env = {k: v for k, v in os.environ.items() if not k.startswith(
            ("GRAFFITI_VIEWER_", "UPLOADER_"))}
        full_env.update({"GRAFFITI_VIEWER_CONNECTION_STRING": connection_string, **(env or {})})
        with log_file.open("ab") as sink:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "viewer", "serve", "--port", str(self.port), *args],
                stdout=sink, stderr=sink, env=full_env, cwd=ROOT)
        try:
            wait_for_port(self.port, 20)
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"viewer did not start: {self.log()}") from None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_file.read_text() if self.log_file.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            stop_process(self.process, timeout_s=10)

    def request(self, method: str, path: str, body: Any = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        """One request with ``path`` sent exactly as given (no client-side normalising)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            data = json.dumps(body).encode() if body is not None else None
            sent = dict(headers or {})
            if data is not None:
                sent["Content-Type"] = "application/json"
            conn.request(method, path, body=data, headers=sent)
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    def raw(self, method: str, path: str, body: bytes | None,
            headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        """One request with exactly this body and these headers (``Host`` included)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.putrequest(method, path, skip_host="Host" in headers,
                            skip_accept_encoding=True)
            for name, value in headers.items():
                conn.putheader(name, value)
            conn.putheader("Content-Length", str(len(body or b"")))
            conn.endheaders(body)
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    def json(self, method: str, path: str, body: Any = None,
             headers: dict[str, str] | None = None) -> tuple[int, Any]:
        status, _, data = self.request(method, path, body, headers)
        return status, json.loads(data) if data else None
