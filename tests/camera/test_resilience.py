"""No worker dies silently, and nothing the detector answers can stop the recording.

The camera module in-process against the real GStreamer server and the fake detector (real
HTTP), as in test_rtsp.py; here the detector answers nonsense for a while, a worker raises, or
the camera freezes.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from local_run.fake_detector import FakeDetector
from local_run.rtsp_camera import RtspServer
from tests.camera.clips import sidecars
from tests.camera.conftest import Camera, twin
from tests.support.polling import wait_until
from tests.support.rtsp import write_marker_video

pytestmark = pytest.mark.integration

StartCamera = Callable[[dict[str, Any]], Camera]
WORKERS = {"source-camera", "detect", "recording-journal", "clip-writer"}


@pytest.fixture
def rtsp(tmp_path: Path) -> Any:
    video = write_marker_video(tmp_path / "camera.mp4", 16, [(9.0, 12.0)], keyframe_s=1.0)
    with RtspServer(tmp_path, file=video) as server:
        yield server


def bad_answers(count: int) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """The first ``count`` answers are nonsense of the kinds seen in the field."""
    served = {"n": 0}
    box = {"label": "graffiti", "class_id": 0, "score": 1.0134, "box": [0.6, 0.3, 0.8, 0.6]}

    def mangle(answer: dict[str, Any]) -> dict[str, Any]:
        served["n"] += 1
        if served["n"] > count:
            return answer
        if served["n"] % 2:
            return {**answer, "inference_ms": "fast"}
        return {**answer, "detections": [box]}

    return mangle


def test_nonsense_from_the_detector_counts_as_a_failure_and_recording_goes_on(
        rtsp: RtspServer, fake_detector: FakeDetector, camera: StartCamera,
        tmp_path: Path) -> None:
    fake_detector.mangle = bad_answers(4)
    cam = camera(twin(rtsp.url, fake_detector.url, tmp_path))
    assert wait_until(lambda: cam.service.status()["detector"]["failures"] >= 4, 15)
    detector = cam.service.status()["detector"]
    assert "malformed" in detector["lastError"]
    assert wait_until(lambda: list(cam.outbox.glob("*.json")), 25), cam.service.status()
    (sidecar,) = sidecars(cam.outbox)
    assert sidecar.detections and sidecar.max_score == pytest.approx(0.9)
    health = cam.runtime.workers.health()
    assert set(health) == WORKERS
    assert all(w["state"] == "running" and w["failures"] == 0 for w in health.values())
    assert not cam.of_type("worker.failed", "alerts")


def test_a_worker_that_raises_is_logged_alerted_and_restarted(
        rtsp: RtspServer, fake_detector: FakeDetector, camera: StartCamera,
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cam = camera(twin(rtsp.url, fake_detector.url, tmp_path))
    trigger = cam.service.trigger
    real_observe = trigger.observe
    calls = {"n": 0}

    def observe_once_broken(*args: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("a bug in the trigger")
        return real_observe(*args)

    monkeypatch.setattr(trigger, "observe", observe_once_broken)
    assert wait_until(lambda: cam.of_type("worker.failed", "alerts"), 10)
    (alert,) = cam.of_type("worker.failed", "alerts")
    assert alert["worker"] == "detect" and alert["restarting"] is True
    assert "a bug in the trigger" in alert["error"]
    assert wait_until(lambda: cam.runtime.workers.health()["detect"]["state"] == "running", 5)
    assert wait_until(lambda: list(cam.outbox.glob("*.json")), 25), cam.service.status()
    assert cam.runtime.workers.health()["detect"]["failures"] == 1
    assert wait_until(lambda: cam.reported().get("workers", {}).get("detect", {})
                      .get("failures") == 1, 12)


def test_a_frozen_camera_is_noticed_within_the_read_timeout(
        tmp_path: Path, fake_detector: FakeDetector, camera: StartCamera) -> None:
    video = write_marker_video(tmp_path / "long.mp4", 40, [], keyframe_s=1.0)
    read_timeout_s = 5.0  # the default
    with RtspServer(tmp_path, file=video) as server:
        cam = camera(twin(server.url, fake_detector.url, tmp_path,
                          stream={"read_timeout_s": read_timeout_s, "stall_timeout_s": 20}))
        assert wait_until(lambda: cam.service.status()["stream"]["camera"]["status"]
                          == "online", 10)
        assert server.process is not None
        os.kill(server.process.pid, signal.SIGSTOP)
        frozen = time.monotonic()
        try:
            assert wait_until(lambda: cam.service.status()["stream"]["camera"]["status"]
                              == "offline", read_timeout_s + 5)
            noticed = time.monotonic() - frozen
        finally:
            os.kill(server.process.pid, signal.SIGCONT)
    # The margin: FFmpeg polls PyAV's interrupt every 100 ms, then the source closes the
    # connection and reports; 1 s is ten times that, for a loaded machine.
    assert read_timeout_s - 0.2 <= noticed <= read_timeout_s + 1.0, noticed
    assert cam.service.status()["stream"]["camera"]["stalls"] >= 1
