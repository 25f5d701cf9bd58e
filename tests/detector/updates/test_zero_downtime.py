"""Zero downtime: a client at >= 20 requests/s to /score sees no error during a swap, and the
model version in its answers changes from old to new exactly once (the two real samples)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from tests.detector.http import call, jpeg
from tests.detector.updates.conftest import Detector, md5_b64
from tests.detector.updates.server import PackageServer
from tests.detector.updates.test_updates import model_state, wait_status
from tests.support.polling import wait_until

SAMPLES = Path(__file__).resolve().parents[3] / "samples" / "models"
RATE = 25.0


class Client(threading.Thread):
    """Sends one /score request every 1/RATE s (sequentially) until stopped."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.image = jpeg(640, 360)
        self.answers: list[tuple[float, int, str | None]] = []
        self.stop_event = threading.Event()

    def run(self) -> None:
        next_at = time.monotonic()
        while not self.stop_event.is_set():
            try:
                reply = call(self.port, "POST", "/score", self.image, timeout=10)
                version = reply.json["model"]["version"] if reply.status == 200 else None
                self.answers.append((time.monotonic(), reply.status, version))
            except Exception:  # noqa: BLE001 - a broken connection is an error too
                self.answers.append((time.monotonic(), -1, None))
            next_at += 1 / RATE
            time.sleep(max(0.0, next_at - time.monotonic()))


def test_swap_under_load_has_no_error_and_one_version_change(
        detector: Callable[..., Detector], server: PackageServer) -> None:
    new = (SAMPLES / "graffiti-sample-1.1.0.zip").read_bytes()
    url = server.add("/graffiti-sample-1.1.0.zip", new)
    det = detector(model=SAMPLES / "graffiti-sample-1.0.0.zip")
    assert det.service.wait_ready(60)
    client = Client(det.port)
    client.start()
    try:
        assert wait_until(lambda: len(client.answers) >= 10, 10)
        det.edit("model", version="1.1.0", url=url, content_md5=md5_b64(new))
        wait_status(det, "active", "1.1.0", timeout=60)
        count = len(client.answers)
        assert wait_until(lambda: len(client.answers) >= count + 10, 10)
    finally:
        client.stop_event.set()
        client.join(15)
    answers = client.answers
    errors = [a for a in answers if a[1] != 200]
    assert errors == [], errors[:5]
    duration = answers[-1][0] - answers[0][0]
    assert len(answers) / duration >= 20, (len(answers), duration)
    versions = [v for _, _, v in answers]
    changes = [(a, b) for a, b in zip(versions, versions[1:], strict=False) if a != b]
    assert versions[0] == "1.0.0" and changes == [("1.0.0", "1.1.0")], changes
    assert model_state(det)["version"] == "1.1.0"
