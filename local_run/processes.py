"""Ports and child processes of the local stand-ins (servers the demo and the tests start)."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        return sock.connect_ex((host, port)) != 0


def wait_for_port(port: int, timeout_s: float = 10.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not port_is_free(port, host):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout_s} s")


def stop_process(process: subprocess.Popen[bytes], timeout_s: float = 5.0) -> int:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout_s``; returns the exit code."""
    process.terminate()
    try:
        return process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


def start_server(command: Sequence[str], *, port: int, log_file: Path, what: str,
                 timeout_s: float) -> subprocess.Popen[bytes]:
    """Start a server in its own session with its output in ``log_file``, and return once
    it listens on ``port``; RuntimeError naming ``what`` and the log if it does not."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as sink:
        process = subprocess.Popen(list(command), stdout=sink, stderr=sink,
                                   start_new_session=True)
    try:
        wait_for_port(port, timeout_s)
    except TimeoutError:
        stop_process(process)
        raise RuntimeError(f"{what} did not start on 127.0.0.1:{port}; see {log_file}") from None
    return process


class ServerProcess:
    """A server this code started; ``stop()`` ends it (SIGTERM, then SIGKILL) and forgets it,
    so ``start()`` can bring it back on the same port."""

    process: subprocess.Popen[bytes] | None
    stop_timeout_s = 5.0

    def stop(self) -> None:
        if self.process is None:
            return
        stop_process(self.process, timeout_s=self.stop_timeout_s)
        self.process = None
