"""Ring buffer, clip writer, recorder, sampler and file source, without a network."""

from __future__ import annotations

import errno
import json
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import av
import pytest

import camera_module.publisher as publisher_module
from camera_module.clipwriter import write_video
from camera_module.detector import scaled_size
from camera_module.packets import EncodedPacket, PacketRing, StreamInfo
from camera_module.recorder import Recorder
from camera_module.recording import Observation
from camera_module.sampling import LatestSlot, Sampler, WallClock
from camera_module.source import StreamSource
from camera_module.trigger import Detection
from config.camera import IdentitySettings, StreamSettings
from contracts.clip import ClipSidecar
from contracts.messages import CameraMessage
from edge_link.base import Identity
from tests.camera.clips import demux, read_clip
from tests.support.polling import wait_until
from tests.support.rtsp import write_marker_video


@pytest.fixture(scope="module")
def h264_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_marker_video(tmp_path_factory.mktemp("video") / "cam.mp4", 6, [(2.0, 3.0)],
                              keyframe_s=1.0)


def test_ring_keeps_whole_gops_covering_the_pre_roll(h264_file: Path) -> None:
    packets = demux(h264_file)
    ring = PacketRing(2.5)
    for packet in packets[5:]:  # join mid-GOP: nothing before the next keyframe is kept
        ring.append(packet)
    held = ring.since(0)
    assert held[0].keyframe
    newest = packets[-1].t
    assert newest - held[0].t >= 2.5  # at least keep_s ...
    assert newest - held[0].t < 2.5 + 1.0 + 0.05  # ... plus less than one GOP
    start = ring.since(newest - 1.5)
    assert start[0].keyframe and start[0].t <= newest - 1.5 < start[0].t + 1.0
    assert ring.stats()["bytes"] == sum(len(p.data) for p in held)


def test_remuxed_clip_is_faststart_h264_that_decodes_to_the_end(h264_file: Path,
                                                                  tmp_path: Path) -> None:
    packets = demux(h264_file)[25:]  # from the keyframe at 1 s
    out = tmp_path / "clip.mp4"
    result = write_video(out, packets)
    assert result.copied and result.codec == "h264"
    facts = read_clip(out)
    assert facts.frames == len(packets) and facts.keyframe_first
    assert facts.duration_s == pytest.approx(5.0, abs=0.05)
    assert facts.marker_from_s == pytest.approx(1.0, abs=0.05)  # rebased to zero
    data = out.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat"), "moov must come first (faststart)"


def test_a_reconnect_inside_a_clip_is_laid_end_to_end(h264_file: Path, tmp_path: Path) -> None:
    first = demux(h264_file)[:50]
    info = StreamInfo(2, *list(vars(first[0].info).values())[1:])
    second = [EncodedPacket(p.data, p.pts, p.dts, p.keyframe, p.t + 10, p.arrived + 10, info)
              for p in first]
    out = tmp_path / "joined.mp4"
    write_video(out, first + second)
    facts = read_clip(out)
    assert facts.frames == 100 and facts.duration_s == pytest.approx(4.0, abs=0.05)


def test_a_source_that_is_not_h264_is_encoded_to_h264(tmp_path: Path) -> None:
    source = tmp_path / "mpeg4.mp4"
    with av.open(str(source), mode="w") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for index in range(50):
            frame = av.VideoFrame(320, 240, "yuv420p")
            for plane in frame.planes:
                plane.update(bytes([index * 4 % 256]) * plane.buffer_size)
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    out = tmp_path / "encoded.mp4"
    result = write_video(out, demux(source))
    assert not result.copied
    facts = read_clip(out)
    assert facts.codec == "h264" and facts.frames == 50


class Sent:
    def __init__(self) -> None:
        self.messages: list[tuple[str, str, dict[str, Any]]] = []

    def __call__(self, message: CameraMessage) -> None:
        self.messages.append((message.OUTPUT, message.TYPE, message.body()))


def make_recorder(tmp_path: Path, packets: list[EncodedPacket]) -> tuple[Recorder, Sent]:
    ring = PacketRing(60)
    for packet in packets:
        ring.append(packet)
    sent = Sent()
    recorder = Recorder(ring, tmp_path / "outbox", WallClock(0.0),
                        Identity("dev-1", "camera_module"),
                        lambda: IdentitySettings(train_id="train-1", camera_id="cam-1"), sent,
                        recordings=tmp_path / "recordings", max_failed=1)
    (tmp_path / "outbox").mkdir()
    return recorder, sent


def test_full_disk_is_reported_and_the_clip_kept_for_a_retry(
        h264_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    packets = demux(h264_file)
    recorder, sent = make_recorder(tmp_path, packets)
    real_publish = publisher_module.publish

    def full(*args: Any) -> Any:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(publisher_module, "publish", full)
    tag = Detection("graffiti", 0, 0.9, (0.6, 0.3, 0.8, 0.6))
    recorder.observe(Observation(102.5, [tag], 0.9), None)
    first = recorder.snapshot("ev-1", 101.0, 104.0, {}, None)
    assert recorder.write(first) is None
    assert sent.messages[-1][:2] == ("alerts", "clip.write_failed")
    assert sent.messages[-1][2]["diskFull"] is True
    assert recorder.pending() == 1 and not list((tmp_path / "outbox").iterdir())
    second = recorder.snapshot("ev-2", 101.0, 104.0, {}, None)
    assert recorder.write(second) is None
    assert sent.messages[-1][2]["dropped"] == "ev-1"  # max_failed=1: the oldest gives way
    assert recorder.dropped == 1

    monkeypatch.setattr(publisher_module, "publish", real_publish)
    files = recorder.write(second)
    assert files is not None and set(files) == {"ev-2.mp4", "ev-2.json"}
    sidecar = ClipSidecar.model_validate_json((tmp_path / "outbox" / "ev-2.json").read_text())
    assert sidecar.video.bytes == files["ev-2.mp4"] and not sidecar.thumbnail
    assert sent.messages[-1][:2] == ("events", "clip.written")


def test_sidecar_detections_are_clip_relative(h264_file: Path, tmp_path: Path) -> None:
    recorder, _ = make_recorder(tmp_path, demux(h264_file))
    tag = Detection("graffiti", 0, 0.8, (0.6, 0.3, 0.8, 0.6))
    recorder.observe(Observation(99.0, [tag], 0.8), None)
    recorder.observe(Observation(102.2, [tag], 0.8), None)
    rec = recorder.snapshot("ev-3", 101.5, 104.0, {"min_score": 0.5}, None)
    recorder.write(rec)
    doc = json.loads((tmp_path / "outbox" / "ev-3.json").read_text())
    assert doc["detections"] == [{"t_s": 1.2, "detections": [
        {"label": "graffiti", "class_id": 0, "score": 0.8, "box": [0.6, 0.3, 0.8, 0.6]}]}]
    assert doc["thresholds"] == {"min_score": 0.5} and doc["trigger"] == "on_demand"


def test_sampler_takes_detect_fps_by_stream_time_and_the_newest_wins() -> None:
    slot = LatestSlot()
    sampler = Sampler(lambda: 5.0, slot, WallClock(0.0))
    for index in range(50):  # 2 s at 25 fps, nobody taking
        sampler.offer(SimpleNamespace(time=index / 25), 10 + index / 25, 10 + index / 25)
    assert slot.put_count == 10 and slot.skipped == 9 and slot.depth == 1
    newest = slot.take(0.0)
    assert newest is not None and newest.stream_s == pytest.approx(1.8)
    assert slot.take(0.0) is None


@pytest.mark.parametrize(("size", "model", "expected"), [
    ((1920, 1080), (320, 320), (568, 320)),
    ((640, 360), (640, 640), (640, 360)),  # never upscaled
    ((1280, 720), (416, 234), (416, 234)),
])
def test_frames_are_scaled_to_cover_the_model_input(size: tuple[int, int],
                                                    model: tuple[int, int],
                                                    expected: tuple[int, int]) -> None:
    assert scaled_size(*size, *model) == expected


def test_a_looped_file_plays_in_real_time_with_increasing_timestamps(tmp_path: Path) -> None:
    video = write_marker_video(tmp_path / "short.mp4", 1.0, [])
    got: list[EncodedPacket] = []
    source = StreamSource("file", str(video), lambda: StreamSettings(loop_file=True),
                          on_packet=got.append)
    started = time.monotonic()
    source.start()
    try:
        assert wait_until(lambda: len(got) >= 60, 5)
    finally:
        source.stop()
    assert time.monotonic() - started >= 60 / 25 - 0.2  # paced, not read at disk speed
    assert all(b.dts > a.dts and b.t > a.t for a, b in zip(got, got[1:], strict=False))
    assert source.stats.status == "online" and source.stats.reconnects == 0
