"""Recordings on disk while they happen, and what a restart makes of what is left: no network.

The packets are a marker video's own (``demux``), with module times from 100 s on, so every
expectation is exact: which packets a torn or damaged journal keeps, where a detection sits in
the clip, what a stream gap looks like in the sidecar.
"""

from __future__ import annotations

import dataclasses
import errno
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import av
import pytest

import camera_module.publisher as publisher_module
from camera_module import spool
from camera_module.clipwriter import write_video
from camera_module.journal import JournalWriter, read_lines, read_packets
from camera_module.packets import Anchor, EncodedPacket, PacketRing, StreamInfo
from camera_module.recorder import Recorder
from camera_module.recording import Observation, Recording
from camera_module.sampling import WallClock
from config.camera import IdentitySettings
from contracts.clip import ClipSidecar
from contracts.detection import Detection
from contracts.messages import CameraMessage
from edge_link.base import Identity
from tests.camera.clips import demux, read_clip
from tests.support.polling import wait_until
from tests.support.rtsp import write_marker_video

TAG = Detection("graffiti", 0, 0.9, (0.6, 0.3, 0.8, 0.6))
REAL_PUBLISH = publisher_module.publish
WALL = WallClock(0.0, datetime(2026, 11, 22, 6, 0, tzinfo=UTC))


@pytest.fixture(scope="module")
def h264_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_marker_video(tmp_path_factory.mktemp("video") / "cam.mp4", 6, [(2.0, 3.0)],
                              keyframe_s=1.0)


class Sent:
    def __init__(self) -> None:
        self.messages: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, message: CameraMessage) -> None:
        self.messages.append((message.TYPE, message.body()))

    def of(self, msg_type: str) -> list[dict[str, Any]]:
        return [body for kind, body in self.messages if kind == msg_type]


def make_recorder(tmp_path: Path, sent: Sent, *, max_failed: int = 3) -> Recorder:
    (tmp_path / "outbox").mkdir(exist_ok=True)
    return Recorder(PacketRing(60), tmp_path / "outbox", WALL,
                    Identity("dev-1", "camera_module"),
                    lambda: IdentitySettings(train_id="train-1", camera_id="cam-1"), sent,
                    recordings=tmp_path / "recordings",
                    state_file=tmp_path / "state" / "recorder.json",
                    sync_interval_s=lambda: 0.2, max_failed=max_failed)


def left_behind(tmp_path: Path, packets: list[EncodedPacket], *, ended: bool = False,
                stem: str = "ev-1") -> Path:
    """A recording as a killed module leaves it: journal written, no end line (unless
    ``ended``: a clip that was waiting for the disk)."""
    rec = Recording(stem, 1, 102.4, "detection", {"min_score": 0.5}, list(packets))
    rec.add(Observation(102.2, [TAG], 0.9))
    rec.add(Observation(102.6, [TAG], 0.9))
    spool.flush(rec, tmp_path / "recordings", WALL)
    if ended:
        rec.end_t = packets[-1].t
        spool.end(rec)
    else:
        spool.close_files(rec)
    assert rec.folder is not None
    return rec.folder


def recover(tmp_path: Path, sent: Sent) -> Recorder:
    recorder = make_recorder(tmp_path, sent)
    recorder.start_writer()
    assert wait_until(lambda: list((tmp_path / "outbox").glob("*.json")), 20), sent.messages
    return recorder


def test_the_journal_gives_back_the_packets_and_the_same_clip(h264_file: Path,
                                                              tmp_path: Path) -> None:
    packets = demux(h264_file)
    writer = JournalWriter(tmp_path / "rec", {"event_id": "ev"})
    for packet in packets:
        writer.packet(packet)
    writer.sync()
    writer.close()
    back = read_packets(tmp_path / "rec")
    assert back.damaged == 0 and back.dropped == 0
    assert [(p.data, p.pts, p.dts, p.keyframe, p.t) for p in back.packets] == [
        (p.data, p.pts, p.dts, p.keyframe, p.t) for p in packets]
    assert back.packets[0].info == packets[0].info
    write_video(tmp_path / "memory.mp4", packets)
    write_video(tmp_path / "journal.mp4", back.packets)
    assert (tmp_path / "memory.mp4").read_bytes() == (tmp_path / "journal.mp4").read_bytes()
    overhead = (tmp_path / "rec" / "video.bin").stat().st_size / sum(len(p.data) for p in packets)
    assert overhead < 1.01


def test_packets_timed_before_their_session_clock_settled_get_its_final_value(
        h264_file: Path, tmp_path: Path) -> None:
    # A server's burst at connect: the first packets are timed by their late arrival until
    # packets arriving on time lower the session's anchor; memory and the journal both end
    # up with the lower one for all of them.
    anchor = Anchor(100.8)
    packets = [dataclasses.replace(p, offset=p.t - 100.0, anchor=anchor)
               for p in demux(h264_file)]
    writer = JournalWriter(tmp_path / "rec", {"event_id": "ev"})
    for index, packet in enumerate(packets):
        if index == 30:
            anchor.value = 100.0
        writer.packet(packet)
    writer.close()
    back = read_packets(tmp_path / "rec").packets
    assert [p.t for p in back] == [p.t for p in packets]
    assert back[0].t == pytest.approx(100.0)


def test_a_torn_last_record_keeps_every_packet_before_it(h264_file: Path,
                                                         tmp_path: Path) -> None:
    packets = demux(h264_file)
    folder = left_behind(tmp_path, packets)
    video = folder / "video.bin"
    with video.open("r+b") as fh:  # the kill came in the middle of the last packet
        fh.truncate(video.stat().st_size - len(packets[-1].data) // 2)
    with (folder / "journal.jsonl").open("ab") as fh:
        fh.write(b'{"type":"obs","t":104.')  # ... and of a journal line
    sent = Sent()
    recover(tmp_path, sent)
    (sidecar_file,) = (tmp_path / "outbox").glob("*.json")
    sidecar = ClipSidecar.model_validate_json(sidecar_file.read_text())
    facts = read_clip(tmp_path / "outbox" / "ev-1.mp4")
    assert facts.frames == len(packets) - 1  # decodes to the last frame on disk
    assert sidecar.interrupted and sidecar.interruption is not None
    assert "killed or crashed" in sidecar.interruption.reason
    assert sidecar.interruption.last_recorded_utc == sidecar.end_utc
    assert sidecar.end_utc == WALL.utc(packets[-2].t)
    assert sidecar.start_utc == WALL.utc(packets[0].t)
    assert [f.t_s for f in sidecar.detections] == [2.2, 2.6]
    assert sidecar.thumbnail and (tmp_path / "outbox" / "ev-1.jpg").stat().st_size > 1000
    (ended,) = sent.of("event.ended")
    assert ended["eventId"] == "ev-1" and ended["reason"].startswith("interrupted: ")
    assert sent.of("clip.written")[0]["stem"] == "ev-1"
    assert not folder.exists(), "the recording folder goes once its clip is published"


def test_damaged_bytes_in_the_middle_cost_only_what_cannot_decode(h264_file: Path,
                                                                  tmp_path: Path) -> None:
    packets = demux(h264_file)
    folder = left_behind(tmp_path, packets)
    video = folder / "video.bin"
    data = bytearray(video.read_bytes())
    at = data.index(packets[60].data)  # a P-frame in the GOP from 2.0 s to 3.0 s
    data[at + 10:at + 20] = b"\xff" * 10
    video.write_bytes(bytes(data))
    back = read_packets(folder)
    assert back.damaged == 1 and back.dropped == 14  # up to the keyframe at 3.0 s
    assert len(back.packets) == len(packets) - 15
    recover(tmp_path, Sent())
    facts = read_clip(tmp_path / "outbox" / "ev-1.mp4")
    assert facts.frames == len(packets) - 15


def test_a_recording_that_was_waiting_for_the_disk_is_published_as_it_was(
        h264_file: Path, tmp_path: Path) -> None:
    packets = demux(h264_file)
    left_behind(tmp_path, packets[:100], ended=True)
    sent = Sent()
    recover(tmp_path, sent)
    sidecar = ClipSidecar.model_validate_json((tmp_path / "outbox" / "ev-1.json").read_text())
    assert not sidecar.interrupted and sidecar.interruption is None
    assert read_clip(tmp_path / "outbox" / "ev-1.mp4").frames == 100
    assert not sent.of("event.ended")  # it ended normally, and said so then


def test_a_recording_already_in_the_outbox_is_not_published_twice(
        h264_file: Path, tmp_path: Path) -> None:
    packets = demux(h264_file)
    folder = left_behind(tmp_path, packets[:50], ended=True)
    (tmp_path / "outbox").mkdir()
    (tmp_path / "outbox" / "ev-1.json").write_text("{}")  # killed between publish and cleanup
    sent = Sent()
    recorder = make_recorder(tmp_path, sent)
    recorder.start_writer()
    assert wait_until(lambda: not folder.exists(), 10)
    recorder.stop()
    assert not sent.of("clip.written") and (tmp_path / "outbox" / "ev-1.json").read_text() == "{}"


def test_an_unreadable_recording_is_kept_aside_and_reported(tmp_path: Path) -> None:
    folder = tmp_path / "recordings" / "ev-9_p2"
    folder.mkdir(parents=True)
    (folder / "journal.jsonl").write_bytes(b"\x00\x00 torn")
    sent = Sent()
    recorder = make_recorder(tmp_path, sent)
    recorder.start_writer()
    assert wait_until(lambda: sent.of("clip.failed"), 10)
    assert sent.of("clip.failed")[0]["eventId"] == "ev-9" and sent.of("clip.failed")[0][
        "part"] == 2
    assert (tmp_path / "recordings" / "ev-9_p2.unusable" / "journal.jsonl").exists()
    assert recorder.counters.dropped_clips[0]["stem"] == "ev-9_p2"
    recorder.stop()


def test_the_recording_is_on_disk_while_the_event_runs(h264_file: Path, tmp_path: Path) -> None:
    packets = demux(h264_file)
    sent = Sent()
    recorder = make_recorder(tmp_path, sent)
    recorder.start_writer()
    try:
        for packet in packets[:60]:
            recorder.on_packet(packet)
        recorder.observe(Observation(102.2, [TAG], 0.9), None)
        recorder.start("ev-live", 1, 101.0, 102.4, {}, None)
        for packet in packets[60:120]:
            recorder.on_packet(packet)
        recorder.observe(Observation(102.6, [TAG], 0.9), None)
        folder = tmp_path / "recordings" / "ev-live"
        # The pre-roll from the keyframe at 1.0 s, then the live packets: 95 packets, while
        # the event is still running.
        assert wait_until(lambda: len(read_packets(folder).packets) == 95, 5)
        assert wait_until(lambda: len(read_lines(folder).observations) == 2, 5)
        assert read_lines(folder).end is None
        assert not list((tmp_path / "outbox").iterdir())
        recorder.end("ev-live", 1, 104.0)
        for packet in packets[120:]:
            recorder.on_packet(packet)
        assert wait_until(lambda: (tmp_path / "outbox" / "ev-live.json").exists(), 10)
    finally:
        recorder.stop()
    sidecar = ClipSidecar.model_validate_json(
        (tmp_path / "outbox" / "ev-live.json").read_text())
    assert not sidecar.interrupted
    assert sidecar.end_utc == WALL.utc(104.0)
    assert not folder.exists()


def test_waiting_clips_and_the_counters_survive_a_restart(
        h264_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    packets = demux(h264_file)
    sent = Sent()
    first = make_recorder(tmp_path, sent, max_failed=1)
    for packet in packets:
        first.on_packet(packet)

    def full(*args: Any) -> Any:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(publisher_module, "publish", full)
    for name in ("ev-old", "ev-new"):
        assert first.write(first.snapshot(name, 101.0, 104.0, {}, None)) is None
    alert = sent.of("clip.write_failed")[-1]
    assert alert["dropped"] == "ev-old" and alert["waiting"] == 1
    assert first.counters.dropped_clips[0]["eventId"] == "ev-old"
    monkeypatch.setattr(publisher_module, "publish", REAL_PUBLISH)

    again = Sent()
    second = recover(tmp_path, again)  # a restart on the same folders
    second.stop()
    assert [p.name for p in (tmp_path / "outbox").glob("*.json")] == ["ev-new.json"]
    assert second.counters.dropped == 1 and second.counters.failures == 2
    assert second.counters.dropped_clips[0]["eventId"] == "ev-old"
    state = json.loads((tmp_path / "state" / "recorder.json").read_text())
    assert state["written"] == 1 and state["dropped"] == 1


def two_sessions(h264_file: Path) -> list[EncodedPacket]:
    """The video from 100 s to 106 s, then (a camera hang: 40 s gone) a new session."""
    first = demux(h264_file)
    info = StreamInfo(2, *list(vars(first[0].info).values())[1:])
    second = [EncodedPacket(p.data, p.pts, p.dts, p.keyframe, p.t + 46, p.arrived + 46, info)
              for p in first]
    return first + second


def test_a_clip_after_a_gap_starts_after_it(h264_file: Path) -> None:
    ring = PacketRing(120)
    for packet in two_sessions(h264_file):
        ring.append(packet)
    start = ring.since(147.0)  # 1 s into the second session
    assert start[0].info.session == 2 and start[0].t == pytest.approx(147.0)
    in_gap = ring.since(120.0)
    assert in_gap[0].info.session == 2 and in_gap[0].t == pytest.approx(146.0)
    assert ring.since(105.5)[0].info.session == 1  # inside the first: the gap is in the clip


def test_a_clip_across_a_gap_lists_it_and_places_detections_on_the_video(
        h264_file: Path, tmp_path: Path) -> None:
    packets = [p for p in two_sessions(h264_file) if p.t >= 104.0]  # 2 s, gap, 6 s
    sent = Sent()
    recorder = make_recorder(tmp_path, sent)
    rec = Recording("ev-gap", 1, 147.0, "detection", {}, list(packets))
    rec.add(Observation(105.0, [TAG], 0.9))
    rec.add(Observation(148.5, [TAG], 0.9))
    rec.end_t = packets[-1].t
    assert recorder.write(rec) is not None
    sidecar = ClipSidecar.model_validate_json((tmp_path / "outbox" / "ev-gap.json").read_text())
    facts = read_clip(tmp_path / "outbox" / "ev-gap.mp4")
    assert facts.duration_s == pytest.approx(8.0, abs=0.05)
    assert [(g.at_s, g.missing_s) for g in sidecar.gaps] == [(2.0, 40.0)]
    assert [f.t_s for f in sidecar.detections] == [1.0, 4.5]  # 2 s + 2.5 s into session 2
    assert sidecar.start_utc == WALL.utc(104.0)
    assert sidecar.end_utc == WALL.utc(packets[-1].t)
    with av.open(str(tmp_path / "outbox" / "ev-gap.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == len(packets)
