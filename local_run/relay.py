"""A byte-counting TCP relay, put between a storage client and Azurite.

It counts the bytes the client sends, which is how the uploader's tests and its benchmark
measure on the wire (not from the uploader's own log) what an upload re-sends after a crash.
"""

from __future__ import annotations

import contextlib
import socket
import threading

from local_run.processes import free_port


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
