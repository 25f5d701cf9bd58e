"""Azurite for the tests (the launcher is :mod:`local_run.azurite`, shared with the demo).

``ByteCounter`` is a TCP relay put between a client and Azurite: it counts the bytes the
client sends, which is how the tests and the benchmark measure what an upload re-sends.
"""

from __future__ import annotations

import contextlib
import socket
import threading

from local_run.azurite import ACCOUNT, DEV_KEY, Azurite, connection_string, start_azurite
from local_run.processes import free_port

__all__ = ["ACCOUNT", "DEV_KEY", "Azurite", "ByteCounter", "connection_string", "start_azurite"]


class ByteCounter:
    """A TCP relay on a free port to ``target_port`` that counts client-to-server bytes."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._sent = 0
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", self.port))
        self._closed = threading.Event()
        threading.Thread(target=self._accept, name="byte-counter", daemon=True).start()

    @property
    def sent(self) -> int:
        """Bytes clients have sent through the relay so far."""
        with self._lock:
            return self._sent

    def close(self) -> None:
        self._closed.set()
        self._server.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=10)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            threading.Thread(target=self._pipe, args=(client, upstream, True),
                             daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, False),
                             daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, count: bool) -> None:
        try:
            while data := source.recv(65536):
                if count:
                    with self._lock:
                        self._sent += len(data)
                sink.sendall(data)
        except OSError:
            pass  # the other side closed: close both below
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
