"""Azurite (Microsoft's Azure Storage emulator) on 127.0.0.1, from the project's npm install.

Blob service only, data in a folder (not in memory) so a test can stop Azurite and start it
again on the same port with everything still there, as a Blob on Edge module restarting
would. It is what ``make demo`` runs as the stand-in for Blob Storage on IoT Edge.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from local_run.processes import ServerProcess, free_port, start_server

ROOT = Path(__file__).resolve().parents[1]
AZURITE_BLOB = ROOT / "node_modules" / ".bin" / "azurite-blob"
ACCOUNT = "devstoreaccount1"
# Azurite's published development key (the same in every Azurite install): local use only.
DEV_KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/"
           "KBHBeksoGMGw==")


def connection_string(port: int, key: str = DEV_KEY, account: str = ACCOUNT) -> str:
    """A storage connection string for an Azurite (or relay) listening on ``port``."""
    return (f"DefaultEndpointsProtocol=http;AccountName={account};AccountKey={key};"
            f"BlobEndpoint=http://127.0.0.1:{port}/{account};")


@dataclass
class Azurite(ServerProcess):
    """One Azurite blob service; ``stop()`` and ``start()`` keep its port and its data."""

    location: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    stop_timeout_s = 10.0

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
        self.process = start_server(command, port=self.port, log_file=self.log_file,
                                    what="Azurite", timeout_s=timeout_s)
        return self


def start_azurite(folder: Path) -> Azurite:
    """Start an Azurite whose data lives in ``folder``/azurite."""
    return Azurite(folder / "azurite").start()


@contextmanager
def demo_blob_store(data_root: Path) -> Iterator[str]:
    """Azurite on the last demo run's data while the block runs; yields its connection
    string."""
    location = data_root / "demo" / "azurite"
    if not location.is_dir():
        raise FileNotFoundError(f"{location} does not exist: run `graffiti-edge demo` first")
    azurite = Azurite(location).start()
    try:
        yield azurite.connection_string
    finally:
        azurite.stop()
