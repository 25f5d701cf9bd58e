"""The camera module against a real GStreamer RTSP server on 127.0.0.1.

The camera serves an H.264 MP4 (640x360, 25 fps, a keyframe every second) whose "graffiti"
is a red square shown at known times; the fake detector (tests/camera/fakes.py) finds the
square in the JPEG it is sent. So the times in these tests are exact: the clip must start
pre-roll before the square appears (to within one keyframe interval), end post-roll after it
goes, and its sidecar's detections must be where and when the square was.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from edge_link.local import invoke_local_method
from local_run.fake_detector import FakeDetector
from local_run.rtsp_camera import RtspServer
from tests.camera.clips import iou, read_clip, sidecars
from tests.camera.conftest import Camera, twin
from tests.support.polling import wait_until
from tests.support.prometheus import scrape
from tests.support.rtsp import LEFT_BOX, RIGHT_BOX, write_marker_video

pytestmark = pytest.mark.integration

KEYFRAME_S = 1.0
PRE_ROLL_S = 2.0
POST_ROLL_S = 1.5
# 2 of 3 samples at 5 fps: the second hit, 0.2-0.4 s after the square appears, confirms.
CONFIRM_DELAY_S = 0.45

StartCamera = Callable[[dict], Camera]


@pytest.fixture
def server(tmp_path: Path) -> Callable[..., RtspServer]:
    servers: list[RtspServer] = []

    def make(seconds: float, spans: list) -> RtspServer:
        video = write_marker_video(tmp_path / f"camera-{len(servers)}.mp4", seconds, spans,
                                   keyframe_s=KEYFRAME_S)
        rtsp = RtspServer(tmp_path, file=video).start()
        servers.append(rtsp)
        return rtsp

    yield make
    for rtsp in servers:
        rtsp.stop()


def wait_for_clips(cam: Camera, count: int, timeout_s: float) -> None:
    assert wait_until(lambda: len(list(cam.outbox.glob("*.json"))) >= count, timeout_s), (
        f"expected {count} clip(s); status {cam.service.status()}")


def test_event_is_recorded_with_pre_and_post_roll_and_a_valid_sidecar(
        server: Callable[..., RtspServer], fake_detector: FakeDetector,
        camera: StartCamera) -> None:
    rtsp = server(12, [(4.0, 7.0)])
    doc = twin(rtsp.url, fake_detector.url, Path(rtsp.folder))
    cam = camera(doc)
    wait_for_clips(cam, 1, 20)

    # clip.written follows the sidecar's rename into the outbox: wait for it as for event.ended
    assert wait_until(lambda: cam.of_type("clip.written"), 5)
    started, written = cam.of_type("event.started"), cam.of_type("clip.written")
    assert wait_until(lambda: cam.of_type("event.ended"), 5)
    assert len(started) == 1 and len(written) == 1
    event_id = started[0]["eventId"]
    assert cam.of_type("event.ended")[0]["eventId"] == event_id
    for body in (started[0], written[0], cam.of_type("event.ended")[0]):
        assert (body["carriage"], body["position"]) == ("4021", "left"), body

    clip = cam.outbox / f"{event_id}.mp4"
    facts = read_clip(clip)
    assert (facts.codec, facts.container) == ("h264", "mov,mp4,m4a,3gp,3g2,mj2")
    assert facts.keyframe_first
    assert facts.marker_from_s is not None and facts.marker_to_s is not None
    # Pre-roll: the clip starts at the keyframe at or before (first hit - pre-roll).
    assert PRE_ROLL_S - 0.25 <= facts.marker_from_s <= PRE_ROLL_S + KEYFRAME_S + 0.05
    # Post-roll: the clip ends post-roll after the last confirming sample.
    tail = facts.duration_s - facts.marker_to_s
    assert POST_ROLL_S - 0.35 <= tail <= POST_ROLL_S + 0.3, tail
    assert abs((facts.marker_to_s - facts.marker_from_s) - 3.0) < 0.1  # the whole appearance

    (sidecar,) = sidecars(cam.outbox)
    assert sidecar.event_id == event_id and sidecar.part == 1
    assert (sidecar.camera_id, sidecar.train_id) == ("cam-test", "test-train")
    assert (sidecar.carriage, sidecar.position, sidecar.schema_version) == ("4021", "left", 3)
    assert sidecar.video.codec == "h264" and sidecar.video.bytes == clip.stat().st_size
    assert abs(sidecar.video.duration_s - facts.duration_s) < 0.1
    assert sidecar.model.name == "marker-finder" and sidecar.thumbnail
    assert (cam.outbox / f"{event_id}.jpg").stat().st_size > 1000
    assert sidecar.max_score == pytest.approx(0.9)
    assert sidecar.thresholds["confirm_hits"] == 2
    times = [f.t_s for f in sidecar.detections]
    assert len(times) >= 12  # 3 s at 5 samples per second, give or take
    assert len(set(times)) == len(times), "each sample once"
    assert facts.marker_from_s - 0.1 <= min(times) and max(times) <= facts.marker_to_s + 0.1
    assert all(iou(d.box, RIGHT_BOX) > 0.8 for f in sidecar.detections for d in f.detections)
    assert sidecar.start_utc < sidecar.trigger_utc < sidecar.end_utc
    # Frames reached the detector scaled to cover its 320x320 input, not at 640x360.
    assert set(fake_detector.sizes) == {(568, 320)}
    assert written[0]["files"] == {p.name: p.stat().st_size
                                   for p in cam.outbox.glob(f"{event_id}.*")}
    assert not list(cam.outbox.glob(".*")), "temporary files left in the outbox"

    # What the IoT Edge metrics collector scrapes says the same, labelled with the camera.
    ids = {"train": "test-train", "camera": "cam-test"}
    metrics = scrape(f"http://127.0.0.1:{doc['metrics']['port']}/metrics")
    assert metrics[("camera_events_total", frozenset(ids.items()))] == 1
    assert metrics[("camera_clips_written_total", frozenset(ids.items()))] == 1
    assert metrics[("camera_stream_up", frozenset({**ids, "stream": "camera"}.items()))] == 1
    assert metrics[("camera_samples_total", frozenset(ids.items()))] >= len(times)

    status, answer = invoke_local_method(cam.data_dir, "record", {"seconds": 3})
    assert status == 200, answer
    on_demand = read_clip(cam.outbox / f"{answer['stem']}.mp4")
    assert 3.0 <= on_demand.duration_s <= 3.0 + KEYFRAME_S + 0.1
    assert invoke_local_method(cam.data_dir, "record", {"seconds": 11})[0] == 400


def test_camera_killed_and_restarted_mid_run_the_module_reconnects_and_records(
        server: Callable[..., RtspServer], fake_detector: FakeDetector,
        camera: StartCamera) -> None:
    rtsp = server(9, [(4.0, 6.0)])
    cam = camera(twin(rtsp.url, fake_detector.url, Path(rtsp.folder)))
    assert wait_until(lambda: cam.service.status()["stream"]["camera"]["status"] == "online", 10)
    time.sleep(1.0)  # mid-stream, before the tag shows
    rtsp.stop()
    assert wait_until(lambda: cam.reported().get("stream", {}).get("camera", {})
                      .get("status") == "offline", 10)
    assert not cam.of_type("event.started")
    time.sleep(1.5)  # the module retries against a closed port meanwhile
    rtsp.start()
    wait_for_clips(cam, 1, 25)
    stream = cam.service.status()["stream"]["camera"]
    assert stream["reconnects"] >= 1 and stream["failures"] >= 1
    (sidecar,) = sidecars(cam.outbox)
    facts = read_clip(cam.outbox / f"{sidecar.stem}.mp4")
    assert facts.marker_from_s is not None
    assert PRE_ROLL_S - 0.25 <= facts.marker_from_s <= PRE_ROLL_S + KEYFRAME_S + 0.05
    assert wait_until(lambda: cam.reported().get("stream", {}).get("camera", {})
                      .get("status") == "online", 5)


def test_detector_stopped_the_module_keeps_streaming_and_recovers(
        server: Callable[..., RtspServer], fake_detector: FakeDetector,
        camera: StartCamera) -> None:
    rtsp = server(16, [(2.0, 4.0), (11.0, 13.0)])
    cam = camera(twin(rtsp.url, fake_detector.url, Path(rtsp.folder)))
    wait_for_clips(cam, 1, 15)
    fake_detector.stop()
    assert wait_until(lambda: cam.service.status()["detector"]["status"] == "down", 5)
    assert wait_until(lambda: cam.reported().get("detector", {}).get("status") == "down", 5)
    packets = cam.service.status()["stream"]["camera"]["packets"]
    time.sleep(2.0)
    down = cam.service.status()
    assert down["stream"]["camera"]["packets"] >= packets + 40  # 25 fps kept flowing
    assert down["stream"]["camera"]["reconnects"] == 0
    assert down["recording"]["ring"]["span_s"] >= PRE_ROLL_S
    fake_detector.start()  # same port
    wait_for_clips(cam, 2, 15)
    status = cam.service.status()
    assert status["detector"]["status"] == "up" and status["detector"]["failures"] >= 1
    assert len(cam.of_type("event.started")) == 2
    second = sidecars(cam.outbox)[1]
    facts = read_clip(cam.outbox / f"{second.stem}.mp4")
    assert facts.marker_from_s is not None and facts.marker_from_s >= PRE_ROLL_S - 0.25


def test_event_ends_and_its_clip_is_written_while_the_detector_is_down(
        server: Callable[..., RtspServer], fake_detector: FakeDetector,
        camera: StartCamera) -> None:
    rtsp = server(14, [(2.0, 4.0)])
    cam = camera(twin(rtsp.url, fake_detector.url, Path(rtsp.folder)))
    assert wait_until(lambda: cam.of_type("event.started"), 10)
    assert cam.service.status()["recording"]["activeEvent"]
    fake_detector.stop()  # during the event: nothing can confirm or end it through a sample
    assert wait_until(lambda: cam.service.status()["detector"]["status"] == "down", 5)
    wait_for_clips(cam, 1, 10)
    assert cam.service.status()["detector"]["status"] == "down"
    (sidecar,) = sidecars(cam.outbox)
    facts = read_clip(cam.outbox / f"{sidecar.stem}.mp4")
    last_hit = max(f.t_s for f in sidecar.detections if f.detections)
    assert facts.duration_s >= last_hit + POST_ROLL_S - 0.3  # the post-roll is all there


def test_threshold_change_through_the_yaml_twin_applies_without_restart(
        server: Callable[..., RtspServer], fake_detector: FakeDetector,
        camera: StartCamera) -> None:
    fake_detector.score = 0.7
    rtsp = server(14, [(2.0, 4.5), (9.0, 11.5)])
    doc = twin(rtsp.url, fake_detector.url, Path(rtsp.folder), trigger={"min_score": 0.8})
    cam = camera(doc)
    assert wait_until(lambda: fake_detector.requests >= 30, 12)  # the first tag was seen ...
    assert not cam.of_type("event.started")  # ... and ignored at 0.7 < 0.8
    sources = list(cam.service.sources)
    doc["trigger"]["min_score"] = 0.6
    cam.edit(doc)
    assert wait_until(lambda: cam.reported().get("settings", {}).get("inForce", {})
                      .get("trigger", {}).get("min_score") == 0.6, 5)
    wait_for_clips(cam, 1, 15)
    assert cam.service.sources == sources and cam.service.status()["stream"]["camera"][
        "reconnects"] == 0, "the change must not restart the stream"
    (sidecar,) = sidecars(cam.outbox)
    assert sidecar.thresholds["min_score"] == 0.6
    assert min(f.t_s for f in sidecar.detections) >= PRE_ROLL_S - 0.25


def test_zones_exclude_a_tag_outside_them(
        server: Callable[..., RtspServer], fake_detector: FakeDetector,
        camera: StartCamera) -> None:
    # The right-hand tag shows first (2-4.5 s), the left-hand one later (7-9.5 s); an
    # include zone over the left half must ignore the first and record the second.
    rtsp = server(12, [(2.0, 4.5, RIGHT_BOX), (7.0, 9.5, LEFT_BOX)])
    left_half = [[0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [0.0, 1.0]]
    cam = camera(twin(rtsp.url, fake_detector.url, Path(rtsp.folder),
                      trigger={"include_zones": [left_half]}))
    wait_for_clips(cam, 1, 20)
    assert wait_until(lambda: cam.of_type("event.ended"), 5)
    assert len(cam.of_type("event.started")) == 1
    (sidecar,) = sidecars(cam.outbox)
    boxes = [d.box for f in sidecar.detections for d in f.detections]
    assert boxes and all(iou(box, LEFT_BOX) > 0.8 for box in boxes)
    facts = read_clip(cam.outbox / f"{sidecar.stem}.mp4")
    assert facts.duration_s < 2.5 + PRE_ROLL_S + POST_ROLL_S + KEYFRAME_S + 0.2


def test_a_long_event_is_split_into_parts_with_one_event_id(
        server: Callable[..., RtspServer], fake_detector: FakeDetector,
        camera: StartCamera) -> None:
    rtsp = server(16, [(2.0, 13.0)])
    cam = camera(twin(rtsp.url, fake_detector.url, Path(rtsp.folder),
                      recording={"max_clip_s": 5, "pre_roll_s": 1}))
    assert wait_until(lambda: cam.of_type("event.ended"), 22), cam.service.status()
    wait_for_clips(cam, 3, 5)
    (ended,) = cam.of_type("event.ended")
    parts = sidecars(cam.outbox)
    assert [p.part for p in parts] == list(range(1, ended["parts"] + 1))
    assert ended["parts"] == 3  # ~1 s pre-roll + 11 s + 1.5 s post-roll, 5 s at most each
    assert {p.event_id for p in parts} == {ended["eventId"]}
    assert [p.stem for p in parts] == [ended["eventId"], f"{ended['eventId']}_p2",
                                       f"{ended['eventId']}_p3"]
    for sidecar in parts:
        facts = read_clip(cam.outbox / f"{sidecar.stem}.mp4")
        assert facts.keyframe_first and facts.duration_s <= 5 + KEYFRAME_S + 0.05
    total = sum(read_clip(cam.outbox / f"{p.stem}.mp4").duration_s for p in parts)
    assert total >= 11.0 + POST_ROLL_S


def test_a_hung_camera_is_caught_by_the_read_timeout_and_reconnected(
        server: Callable[..., RtspServer], fake_detector: FakeDetector,
        camera: StartCamera) -> None:
    rtsp = server(30, [])
    cam = camera(twin(rtsp.url, fake_detector.url, Path(rtsp.folder)))  # read_timeout_s 2
    assert wait_until(lambda: cam.service.status()["stream"]["camera"]["status"] == "online", 10)
    assert rtsp.process is not None
    os.kill(rtsp.process.pid, signal.SIGSTOP)  # the camera hangs: the socket stays open
    frozen = time.monotonic()
    try:
        assert wait_until(lambda: cam.service.status()["stream"]["camera"]["status"]
                          == "offline", 8)
        assert time.monotonic() - frozen < 2 + 2.5  # read timeout, not a minute
        assert cam.service.status()["stream"]["camera"]["stalls"] >= 1
    finally:
        os.kill(rtsp.process.pid, signal.SIGCONT)
    assert wait_until(lambda: cam.service.status()["stream"]["camera"]["status"] == "online",
                      20)
    assert cam.service.status()["stream"]["camera"]["reconnects"] >= 1
