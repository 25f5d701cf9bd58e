"""The Web API against a running DetectorService: contract, Custom Vision shape, bad input,
limits, live settings, detection events and session reload."""

from __future__ import annotations

import json
import os
import struct
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests.detector.http import Reply, call, jpeg, multipart
from tests.detector.running import Running, twin_text
from tests.support.polling import wait_until

# The graffiti detection of ROWS on a 640x480 frame (letterboxed to 320x240 + 40 px padding
# above).
GRAFFITI_BOX = [0.4, 208 / 480, 0.6, 272 / 480]



def test_score_contract(api: Running) -> None:
    reply = api.post("/score?camera_id=cam-07&ts=2026-11-21T10:00:00Z")
    assert reply.status == 200 and reply.headers["content-type"].startswith("application/json")
    doc = reply.json
    assert set(doc) == {"model", "image", "inference_ms", "camera_id", "ts", "detections"}
    assert doc["model"] == {"name": "graffiti-sample", "version": "1.0.0", "format": "yolov8"}
    assert doc["image"] == {"width": 640, "height": 480}
    assert doc["camera_id"] == "cam-07" and doc["ts"] == "2026-11-21T10:00:00.000+00:00"
    assert doc["inference_ms"] > 0
    graffiti, person = doc["detections"]
    assert set(graffiti) == {"label", "class_id", "score", "box"}
    assert (graffiti["label"], graffiti["class_id"]) == ("graffiti", 0)
    assert graffiti["score"] == pytest.approx(0.9)
    assert graffiti["box"] == pytest.approx(GRAFFITI_BOX, abs=1e-5)
    assert person["label"] == "person"
    # A frame twice the size is decoded at half scale by the JPEG decoder: same boxes.
    big = api.post("/score", jpeg(1280, 960)).json
    assert big["image"] == {"width": 1280, "height": 960}
    assert big["detections"][0]["box"] == pytest.approx(GRAFFITI_BOX, abs=1e-5)


@pytest.mark.parametrize("route", ["/image", "/image/nostore",
                                   "/4f1c/detect/iterations/Iteration3/image",
                                   "/4f1c/detect/iterations/Iteration3/image/nostore"])
@pytest.mark.parametrize("as_multipart", [False, True])
def test_custom_vision_routes_answer_its_exact_shape(api: Running, route: str,
                                                     as_multipart: bool) -> None:
    body, ctype = multipart("imageData", jpeg()) if as_multipart else (jpeg(),
                                                                       "application/octet-stream")
    reply = api.post(route, body, ctype)
    assert reply.status == 200
    doc = reply.json
    assert list(doc) == ["id", "project", "iteration", "created", "predictions"]
    assert all(isinstance(doc[k], str) for k in ("id", "project", "iteration", "created"))
    if "iterations" in route:
        assert (doc["project"], doc["iteration"]) == ("4f1c", "Iteration3")
    first = doc["predictions"][0]
    assert list(first) == ["probability", "tagId", "tagName", "boundingBox"]
    assert (first["tagName"], first["tagId"]) == ("graffiti", 0)
    assert first["probability"] == pytest.approx(0.9)
    left, top, x2, y2 = GRAFFITI_BOX
    assert first["boundingBox"] == pytest.approx(
        {"left": left, "top": top, "width": x2 - left, "height": y2 - top}, abs=1e-6)


def test_health_model_and_metrics(api: Running) -> None:
    assert api.get("/healthz").json == {"status": "alive"}
    assert api.get("/readyz").json["model"] == "graffiti-sample:1.0.0"
    info = api.get("/model").json
    assert info["providers"][0] == "OpenVINOExecutionProvider"
    assert (info["labels"], info["input"]["width"], info["format"]) == (
        ["graffiti", "person"], 320, "yolov8")
    api.post("/score")
    api.post("/score", b"", "image/jpeg")
    metrics = api.get("/metrics")
    assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = metrics.body.decode()
    assert 'detector_requests_total{route="/score",code="200"} 1' in text
    assert 'detector_requests_total{route="/score",code="400"} 1' in text
    assert 'detector_errors_total{kind="bad_image"} 1' in text
    assert "detector_inference_seconds_count 1" in text
    assert 'detector_model_info{name="graffiti-sample",version="1.0.0",format="yolov8",' \
           'provider="OpenVINOExecutionProvider"} 1' in text


def png_bomb(width: int, height: int) -> bytes:
    """A valid PNG header of a huge image; the rest never gets decoded."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + chunk
            + struct.pack(">I", zlib.crc32(chunk)) + zlib.compress(b"\0" * 100000))


@pytest.mark.parametrize(("name", "body", "ctype", "status", "kind"), [
    ("empty body", b"", "image/jpeg", 400, "bad_image"),
    ("random bytes", np.random.default_rng(1).bytes(5000), "application/octet-stream", 415,
     "unsupported_media"),
    ("truncated JPEG", jpeg()[:3000], "image/jpeg", 400, "bad_image"),
    ("20000x20000 PNG", png_bomb(20000, 20000), "image/png", 413, "image_too_large"),
    ("wrong content type", jpeg(), "text/plain", 415, "unsupported_media"),
    ("oversized body", b"\xff\xd8\xff" + b"\0" * (9 * 1024 * 1024), "image/jpeg", 413,
     "body_too_large"),
    ("multipart without imageData", multipart("file", jpeg())[0], None, 400, "bad_request"),
])
def test_bad_input_gets_a_4xx_json_error(api: Running, name: str, body: bytes,
                                         ctype: str | None, status: int, kind: str) -> None:
    if ctype is None:
        body, ctype = multipart("file", jpeg())
    reply = api.post("/score", body, ctype)
    assert reply.status == status, name
    assert reply.json["error"] == kind and reply.json["message"]
    # The server is still fine afterwards.
    assert api.post("/score").status == 200


def test_other_errors_are_json_too(api: Running) -> None:
    assert api.post("/score?ts=yesterday").json["error"] == "bad_request"
    assert api.post("/score?camera_id=" + "c" * 200).json["error"] == "bad_request"
    missing = api.get("/nope")
    assert (missing.status, missing.json["error"]) == (404, "not_found")
    wrong = call(api.port, "GET", "/score")
    assert (wrong.status, wrong.json["error"]) == (405, "method_not_allowed")


def test_no_model_is_503_not_500(start: Callable[..., Running], tmp_path: Path) -> None:
    running = start(model=tmp_path / "missing.zip")
    assert wait_until(lambda: running.service.slot.error is not None, 5)
    for reply in (running.post("/score"), running.get("/readyz"), running.get("/model")):
        assert reply.status == 503 and reply.json["error"] == "no_model"
    assert "no model package" in running.reported()["inference"]["error"]
    assert running.get("/healthz").status == 200


def _slow_inference(running: Running, seconds: float) -> None:
    """Make every inference of the loaded model take ``seconds`` longer, so slots stay busy."""
    assert running.service.wait_ready(10)
    model = running.service.slot.current
    assert model is not None
    real = model.detect

    def slow(*args: object) -> object:
        time.sleep(seconds)
        return real(*args)  # type: ignore[arg-type]
    model.detect = slow  # type: ignore[method-assign]


def test_excess_requests_get_503_with_retry_after(start: Callable[..., Running]) -> None:
    running = start(server={"max_concurrent": 1, "queue_wait_s": 0.2})
    _slow_inference(running, 1.0)
    replies: list[Reply] = []
    threads = [threading.Thread(target=lambda: replies.append(running.post("/score")))
               for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(r.status for r in replies) == [200, 503]
    busy = next(r for r in replies if r.status == 503)
    assert busy.headers["retry-after"] == "1" and busy.json["error"] == "busy"


def test_detection_events_are_rate_limited_per_camera(start: Callable[..., Running]) -> None:
    running = start(events={"rate_limit_s": 60})
    assert running.service.wait_ready(10)
    for camera in ("cam-a", "cam-a", "cam-b", "cam-a"):
        assert running.post(f"/score?camera_id={camera}&ts=1700000000").status == 200
    lines = running.outputs()
    assert [line["body"]["cameraId"] for line in lines] == ["cam-a", "cam-b"]
    body = lines[0]["body"]
    assert lines[0]["type"] == "detection.found"
    assert body["frameTime"] == "2023-11-14T22:13:20.000+00:00"
    assert body["model"] == {"name": "graffiti-sample", "version": "1.0.0"}
    assert [d["label"] for d in body["detections"]] == ["graffiti", "person"]
    # A live rate-limit change applies to the next request.
    running.edit("events", rate_limit_s=0)
    assert wait_until(lambda: running.runtime.settings.events.rate_limit_s == 0, 3)
    running.post("/score?camera_id=cam-a")
    assert len(running.outputs()) == 3


def test_threshold_change_applies_live(api: Running) -> None:
    assert len(api.post("/score").json["detections"]) == 2
    api.edit("thresholds", min_score=0.8)
    assert wait_until(lambda: len(api.post("/score").json["detections"]) == 1, 3)
    api.edit("thresholds", min_score=0.1, labels=["person"], max_detections=5)
    assert wait_until(lambda: [d["label"] for d in api.post("/score").json["detections"]]
                      == ["person"], 3)


def test_device_change_reloads_the_session_without_dropping_requests(api: Running) -> None:
    statuses: list[int] = []
    stop = threading.Event()

    def hammer() -> None:
        while not stop.is_set():
            statuses.append(api.post("/score").status)
    worker = threading.Thread(target=hammer)
    worker.start()
    try:
        time.sleep(0.3)
        api.edit("inference", device="GPU")
        assert wait_until(lambda: api.get("/model").json["device"] == "GPU", 10)
        time.sleep(0.3)
    finally:
        stop.set()
        worker.join(10)
    assert statuses and set(statuses) == {200}
    info = api.get("/model").json
    assert info["providers"] == ["CPUExecutionProvider"]
    assert "'GPU'" in info["fallback_reason"]
    reported = api.reported()["inference"]
    assert reported["providers"] == ["CPUExecutionProvider"] and reported["device"] == "GPU"


def test_detector_module_command_serves_the_model(tmp_path: Path, package: Path) -> None:
    import signal
    import socket
    import subprocess
    import sys

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    twin = tmp_path / "detector.yaml"
    twin.write_text(twin_text(inference={"cache_dir": str(tmp_path / "cache")}))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IOTEDGE_", "GRAFFITI_"))}
    proc = subprocess.Popen([sys.executable, "-m", "detector_module", "--config", str(twin),
                             "--port", str(port), "--model", str(package), "--data-dir",
                             str(tmp_path / "data")], env=env, stderr=subprocess.PIPE)
    try:
        def ready() -> bool:
            try:
                return call(port, "GET", "/readyz", timeout=1).status == 200
            except OSError:
                return False
        assert wait_until(ready, 30)
        assert len(call(port, "POST", "/score", jpeg()).json["detections"]) == 2
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert b"model.loaded" in err


def test_chunked_body_over_the_live_limit_is_413(start: Callable[..., Running]) -> None:
    import http.client

    running = start(server={"max_body_mb": 0.05})
    assert running.service.wait_ready(10)
    conn = http.client.HTTPConnection("127.0.0.1", running.port, timeout=10)
    try:
        conn.request("POST", "/score", body=iter([b"\xff\xd8\xff" + b"\0" * 30000] * 3),
                     headers={"Content-Type": "image/jpeg"}, encode_chunked=True)
        response = conn.getresponse()
        assert response.status == 413
        assert json.loads(response.read())["error"] == "body_too_large"
    finally:
        conn.close()
    running.edit("server", max_body_mb=8)
    assert wait_until(lambda: running.post("/score").status == 200, 3)


def test_a_greedy_camera_does_not_starve_the_polite_ones(start: Callable[..., Running]) -> None:
    """Eight requests of one camera always waiting, two cameras posting one frame at a time:
    each polite frame is served at the next free slot, the greedy ones replace each other."""
    running = start(server={"max_concurrent": 1, "queue_wait_s": 1.0})
    _slow_inference(running, 0.1)
    stop = threading.Event()
    statuses: dict[str, list[int]] = {"greedy": [], "polite-a": [], "polite-b": []}

    def post(camera: str, frames: int | None) -> None:
        sent = 0
        while not stop.is_set() and (frames is None or sent < frames):
            statuses[camera].append(running.post(f"/score?camera_id={camera}").status)
            sent += 1
    greedy = [threading.Thread(target=post, args=("greedy", None)) for _ in range(8)]
    polite = [threading.Thread(target=post, args=(c, 8)) for c in ("polite-a", "polite-b")]
    for t in greedy:
        t.start()
    time.sleep(0.3)  # the greedy camera fills the queue first
    for t in polite:
        t.start()
    for t in polite:
        t.join(30)
    stop.set()
    for t in greedy:
        t.join(10)
    assert statuses["polite-a"] == [200] * 8 and statuses["polite-b"] == [200] * 8
    assert 503 in statuses["greedy"] and 200 in statuses["greedy"]
