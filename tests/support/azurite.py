"""Azurite (Microsoft's Azure Storage emulator) on 127.0.0.1, from the project's npm install.

Blob service only, data in a folder (not in memory) so a test can stop Azurite and start it
again on the same port with everything still there, as a Blob on Edge module restarting
would. ``ByteCounter`` is a TCP relay put between a client and Azurite: it counts the bytes the
client sends, which is how the tests and the benchmark measure what an upload re-sends.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.mosquitto import free_port, wait_for_port
from tests.support.processes import stop_process

ROOT = Path(__file__).resolve().parents[2]
AZURITE_BLOB = ROOT / "node_modules" / ".bin" / "azurite-blob"
ACCOUNT = "devstoreaccount1"
# Azurite's published development key (the same in every Azurite install); test use only.
DEV_KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/"
           "KBHBeksoGMGw==")


def connection_string(port: int, key: str = DEV_KEY, account: str = ACCOUNT) -> str:
    """A storage connection string for an Azurite (or relay) listening on ``port``."""
    return (f"DefaultEndpointsProtocol=http;AccountName={account};AccountKey={key};"
            f"BlobEndpoint=http://127.0.0.1:{port}/{account};")


@dataclass
class Azurite:
    """One Azurite blob service; ``stop()`` and ``start()`` keep its port and its data."""

    location: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def connection_string(self) -> str:
        return connection_string(self.port)

    @property
    def log_file(self) -> Path:
        return self.location.parent / f"{self.location.name}.log"

    def start(self, timeout_s: float = 20.0) -> Azurite:
        if not AZURITE_BLOB.exists():
            raise RuntimeError(f"{AZURITE_BLOB} is missing; `make test` installs Azurite from "
                               "npm (npm ci)")
        self.location.mkdir(parents=True, exist_ok=True)
        command = [str(AZURITE_BLOB), "--blobHost", "127.0.0.1", "--blobPort", str(self.port),
                   "--location", str(self.location), "--disableTelemetry",
                   "--skipApiVersionCheck", "--loose"]
        with self.log_file.open("ab") as sink:
            self.process = subprocess.Popen(command, stdout=sink, stderr=sink,
                                            start_new_session=True)
        try:
            wait_for_port(self.port, timeout_s)
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"Azurite did not start: {self.log_file.read_text()}") from None
        return self

    def stop(self) -> None:
        """Terminate Azurite and wait until its port is closed."""
        if self.process is None:
            return
        stop_process(self.process, timeout_s=10)
        self.process = None


def start_azurite(folder: Path) -> Azurite:
    """Start an Azurite whose data lives in ``folder``/azurite."""
    return Azurite(folder / "azurite").start()


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
