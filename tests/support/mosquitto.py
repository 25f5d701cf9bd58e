"""Mosquitto on 127.0.0.1 with TLS, so the real azure-iot-device client can connect to it.

The SDK always speaks MQTT over TLS on port 8883 to its gateway host, so the broker listens
there with a CA and server certificate generated for this run; a second, plain listener on a
free port is for the test-side responder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from local_run.processes import free_port, stop_process, wait_for_port

MQTT_TLS_PORT = 8883


def make_certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 / localhost."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_key, ca_pem = folder / "ca.key", folder / "ca.pem"
    key, csr, pem = folder / "server.key", folder / "server.csr", folder / "server.pem"
    ext = folder / "server.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,IP:127.0.0.2,DNS:localhost\n"
                   "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
                   "extendedKeyUsage=serverAuth\n")
    run = lambda *args: subprocess.run(["openssl", *args], check=True, capture_output=True)  # noqa: E731
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out",
        str(ca_pem), "-days", "2", "-subj", "/CN=graffiti-edge test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj",
        "/CN=127.0.0.1")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca_pem), "-CAkey", str(ca_key),
        "-CAcreateserial", "-out", str(pem), "-days", "2", "-extfile", str(ext))
    for path in (ca_pem, key, pem):
        path.chmod(0o644)
    return ca_pem, pem, key


@dataclass
class Mosquitto:
    process: subprocess.Popen[bytes]
    ca_file: Path
    plain_port: int
    log_file: Path
    certs: tuple[Path, Path, Path]

    def stop(self) -> None:
        stop_process(self.process, timeout_s=5)


def start_mosquitto(folder: Path, host: str = "127.0.0.1", plain_port: int | None = None,
                    certs: tuple[Path, Path, Path] | None = None) -> Mosquitto:
    """Start a broker whose TLS listener is ``host``:8883 (the SDK's fixed MQTT port).

    Another loopback address (127.0.0.2) gives a second broker that a test can stop and start
    while the first keeps serving; ``certs`` and ``plain_port`` let a restart keep both."""
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(binary).exists():
        raise RuntimeError("mosquitto is not installed; `make test` installs it (apt package "
                           "mosquitto)")
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o755)
    ca, cert, key = certs or make_certificates(folder / "certs")
    ca.parent.chmod(0o755)
    plain = plain_port or free_port()
    conf = folder / "mosquitto.conf"
    log_file = folder / "mosquitto.log"
    lines = [
        "per_listener_settings false",
        "allow_anonymous true",
        # Like IoT Hub and edgeHub, keep sessions across a broker restart: the SDK does not
        # re-subscribe after a reconnect to a persistent session.
        "persistence true",
        f"persistence_location {folder}/",
        f"log_dest file {log_file}",
        f"listener {MQTT_TLS_PORT} {host}",
        f"cafile {ca}",
        f"certfile {cert}",
        f"keyfile {key}",
        f"listener {plain} 127.0.0.1",
    ]
    if os.geteuid() == 0:
        lines.insert(0, "user root")
    conf.write_text("\n".join(lines) + "\n")
    process = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    try:
        wait_for_port(plain)
        wait_for_port(MQTT_TLS_PORT, host=host)
    except TimeoutError:
        process.kill()
        _, err = process.communicate()
        raise RuntimeError(f"mosquitto did not start: {err.decode(errors='replace')} "
                           f"{log_file.read_text() if log_file.exists() else ''}") from None
    return Mosquitto(process, ca, plain, log_file, (ca, cert, key))
