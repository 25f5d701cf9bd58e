"""Unit tests of the uploader's parts, without a storage endpoint."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from contracts.blob_layout import blob_metadata, blob_name
from contracts.clip import ClipSidecar
from infra.throttle import Throttle
from samples.clips import video_bytes, write_clip
from uploader_module.blocks import plan_file
from uploader_module.clipset import ClipFiles, CorruptClip, check_clip, check_video, read_sidecar
from uploader_module.gate import AUTH_REFUSED, UNREACHABLE, EndpointGate
from uploader_module.outbox import Entry, Outbox, Scan
from uploader_module.quarantine import REASON_FILE, quarantine
from uploader_module.quota import choose_evictions


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_block_ids_are_deterministic_equal_length_and_name_their_content(tmp_path: Path) -> None:
    path = tmp_path / "v.mp4"
    path.write_bytes(video_bytes(10_000))
    first, again = plan_file(path, 4096), plan_file(path, 4096)
    assert [b.id for b in first.blocks] == [b.id for b in again.blocks]
    assert [(b.offset, b.length) for b in first.blocks] == [(0, 4096), (4096, 4096),
                                                            (8192, 1808)]
    assert len({len(b.id) for b in first.blocks}) == 1
    assert len({b.id for b in first.blocks}) == 3
    data = bytearray(path.read_bytes())
    data[5000] ^= 0xFF
    path.write_bytes(bytes(data))
    changed = plan_file(path, 4096)
    assert [b.id == c.id for b, c in zip(first.blocks, changed.blocks, strict=True)] == [
        True, False, True]
    assert len(base64.b64decode(first.blocks[0].id)) < 64


def test_plan_digests_equal_whole_file_digests_with_parallel_hashing(tmp_path: Path) -> None:
    data = video_bytes(700_000, seed=3)
    path = tmp_path / "v.mp4"
    path.write_bytes(data)
    plan = plan_file(path, 300_000)  # above PARALLEL_HASH_BYTES, and a short last block
    assert plan.md5 == hashlib.md5(data).digest()
    assert plan.sha256 == hashlib.sha256(data).hexdigest()
    assert plan.size == len(data) and len(plan.blocks) == 3


def test_blob_names_follow_the_layout_with_a_part_suffix(tmp_path: Path) -> None:
    start = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
    first = write_clip(tmp_path, "ev-1", b"x", start=start)
    second = write_clip(tmp_path, "ev-1", b"x", start=start, part=2)
    assert blob_name(first, ".mp4") == "train-0001/cam-01/2026/03/04/050607_ev-1.mp4"
    assert blob_name(second, ".json") == "train-0001/cam-01/2026/03/04/050607_ev-1_p2.json"


def test_metadata_values_are_ascii_and_carry_the_contract_fields(tmp_path: Path) -> None:
    sidecar = write_clip(tmp_path, "ev-2", b"x", max_score=0.87654,
                         labels=("graffiti", "tag-ü"))
    meta = blob_metadata(sidecar)
    assert meta["event_id"] == "ev-2" and meta["camera"] == "cam-01"
    assert meta["train"] == "train-0001" and meta["model_version"] == "1.2.0"
    assert meta["max_score"] == "0.8765" and meta["duration_s"] == "12.000"
    assert meta["end_utc"] == sidecar.end_utc.isoformat()
    assert meta["labels"] == "graffiti,tag-%C3%BC"
    assert all(v.isascii() and v.isprintable() for v in meta.values())


def test_unreadable_or_off_contract_sidecar_is_corrupt(tmp_path: Path) -> None:
    bad = tmp_path / "a.json"
    bad.write_text("{not json")
    with pytest.raises(CorruptClip, match="not JSON"):
        read_sidecar(bad)
    doc = json.loads(write_clip(tmp_path, "ev-3", b"x").model_dump_json())
    del doc["video"]["sha256"]
    bad.write_text(json.dumps(doc))
    with pytest.raises(CorruptClip, match="video.sha256"):
        read_sidecar(bad)


def test_video_and_files_must_match_the_sidecar(tmp_path: Path) -> None:
    sidecar = write_clip(tmp_path, "ev-4", b"abc")
    check_clip(ClipFiles(tmp_path, "ev-4"), sidecar)
    with pytest.raises(CorruptClip, match="describes"):
        check_clip(ClipFiles(tmp_path, "other"), sidecar)
    (tmp_path / "ev-4.jpg").unlink()
    with pytest.raises(CorruptClip, match="thumbnail"):
        check_clip(ClipFiles(tmp_path, "ev-4"), sidecar)
    with pytest.raises(CorruptClip, match="sha256"):
        check_video(sidecar, 3, "0" * 64)
    with pytest.raises(CorruptClip, match="bytes"):
        check_video(sidecar, 4, sidecar.video.sha256)


def test_sidecar_with_a_newer_schema_version_is_refused() -> None:
    with pytest.raises(ValueError, match="schema_version"):
        ClipSidecar.model_validate({"schema_version": 4})


def test_carriage_travels_in_the_metadata_and_an_older_sidecar_still_reads(
        tmp_path: Path) -> None:
    sidecar = write_clip(tmp_path, "ev-5", b"x", carriage="4021", position="left")
    meta = blob_metadata(sidecar)
    assert (meta["carriage"], meta["position"], meta["schema_version"]) == ("4021", "left", "3")
    doc = json.loads(write_clip(tmp_path, "ev-6", b"x").model_dump_json())
    del doc["carriage"], doc["position"]
    (tmp_path / "ev-6.json").write_text(json.dumps({**doc, "schema_version": 2}))
    old = read_sidecar(tmp_path / "ev-6.json")
    assert old.carriage is None and old.position is None
    assert "carriage" not in blob_metadata(old) and "position" not in blob_metadata(old)


def test_scan_tells_complete_from_incomplete_and_ignores_temporary_files(tmp_path: Path) -> None:
    write_clip(tmp_path, "done", b"12345")
    (tmp_path / "half.mp4").write_bytes(b"123")
    (tmp_path / ".next.json.tmp").write_text("{}")
    (tmp_path / "notes.txt").write_text("x")
    scan = Outbox(tmp_path).scan()
    assert [e.stem for e in scan.pending] == ["done"]
    assert [e.stem for e in scan.incomplete] == ["half"]
    assert scan.pending[0].bytes == sum(p.stat().st_size for p in
                                        ClipFiles(tmp_path, "done").present())


def _entry(stem: str, size: int, mtime: float) -> Entry:
    return Entry(ClipFiles(Path("/x"), stem), size, mtime, True)


def test_quota_evicts_oldest_first_never_a_busy_clip_and_kept_clips_before_pending() -> None:
    scan = Scan(pending=[_entry("a", 100, 1), _entry("b", 100, 2), _entry("c", 100, 3)],
                kept=[_entry("k", 50, 0)])
    purge, evict = choose_evictions(scan, 200, "oldest", set(), lambda e: None)
    assert [e.stem for e in purge] == ["k"] and [e.stem for e in evict] == ["a"]
    purge, evict = choose_evictions(scan, 150, "oldest", {"a"}, lambda e: None)
    assert [e.stem for e in evict] == ["b", "c"]
    assert choose_evictions(scan, 350, "oldest", set(), lambda e: None) == ([], [])


def test_quota_lowest_score_policy_skips_unreadable_and_breaks_ties_by_age() -> None:
    scan = Scan(pending=[_entry("a", 100, 1), _entry("b", 100, 2), _entry("c", 100, 3),
                         _entry("d", 100, 4)])
    scores = {"a": 0.9, "b": 0.6, "c": None, "d": 0.6}
    _, evict = choose_evictions(scan, 200, "lowest_score", set(), lambda e: scores[e.stem])
    assert [e.stem for e in evict] == ["b", "d"]


def test_quarantine_moves_every_file_and_writes_the_reason(tmp_path: Path) -> None:
    write_clip(tmp_path / "outbox", "ev-5", b"abc")
    folder = quarantine(ClipFiles(tmp_path / "outbox", "ev-5"), tmp_path / "q", "bad sha")
    assert sorted(p.name for p in folder.iterdir()) == [
        "ev-5.jpg", "ev-5.json", "ev-5.mp4", REASON_FILE]
    assert json.loads((folder / REASON_FILE).read_text())["reason"] == "bad sha"
    assert not list((tmp_path / "outbox").glob("ev-5.*"))
    write_clip(tmp_path / "outbox", "ev-5", b"abc")
    assert quarantine(ClipFiles(tmp_path / "outbox", "ev-5"), tmp_path / "q", "again") != folder


def test_throttle_keeps_concurrent_senders_under_the_rate() -> None:
    clock = FakeClock()
    throttle = Throttle(1000, clock=clock)
    assert throttle.reserve(1000) == 0  # one second of burst
    assert throttle.reserve(500) == pytest.approx(0.5)
    assert throttle.reserve(500) == pytest.approx(1.0)
    clock.now += 1.0
    assert throttle.reserve(0) == 0
    throttle.set_rate(0)
    assert throttle.reserve(10**9) == 0


def test_throttle_wait_gives_up_when_stopping() -> None:
    throttle = Throttle(10)
    throttle.reserve(10)
    stop = threading.Event()
    stop.set()
    assert throttle.wait(1000, stop) is False


def test_gate_backs_off_once_per_wave_and_paces_auth_failures_slowly() -> None:
    clock = FakeClock()
    gate = EndpointGate(1.0, 8.0, clock=clock)
    first = gate.failed(UNREACHABLE)
    assert 0.5 <= first <= 1.0
    assert gate.failed(UNREACHABLE) == pytest.approx(first)  # second worker, same wave
    clock.now += first
    assert 1.0 <= gate.failed(UNREACHABLE) <= 2.0
    assert gate.failed(AUTH_REFUSED, 600.0) == 600.0
    assert gate.state == AUTH_REFUSED and gate.retry_in() == 600.0
    gate.reopen()
    assert gate.wait_open(threading.Event())
    gate.succeeded()
    assert gate.state == "ok"


def test_sidecar_ids_that_cannot_name_blobs_make_the_clip_corrupt(tmp_path: Path) -> None:
    doc = json.loads(write_clip(tmp_path, "ev-6", b"x").model_dump_json())
    for field, value in (("camera_id", "c" * 65), ("train_id", "t" * 80)):
        (tmp_path / "ev-6.json").write_text(json.dumps({**doc, field: value}))
        with pytest.raises(CorruptClip, match="not a valid identifier"):
            read_sidecar(tmp_path / "ev-6.json")


def test_a_malformed_account_key_is_named_without_quoting_it() -> None:
    from infra.blob_client import key_problem

    base = "DefaultEndpointsProtocol=http;AccountName=a;AccountKey={};BlobEndpoint=http://x/a"
    assert key_problem(base.format(base64.b64encode(b"k" * 64).decode())) is None
    assert key_problem("UseDevelopmentStorage=true") is None
    for key in ("not-base64!!", "abc", "YWJ", ""):
        problem = key_problem(base.format(key))
        assert problem is not None and "AccountKey" in problem
        assert not key or key not in problem


def test_a_request_that_cannot_be_signed_is_an_auth_failure() -> None:
    from azure.core.exceptions import ClientAuthenticationError

    from infra.blob_client import classify

    failure = classify(ClientAuthenticationError("Incorrect padding"))
    assert failure.kind == "auth" and failure.status is None


def test_capture_time_comes_from_the_event_id_when_the_sidecar_is_unreadable() -> None:
    from uploader_module.quota import stem_time

    assert stem_time("20261121T221507Z-cam-01-1a2b3c") == datetime(
        2026, 11, 21, 22, 15, 7, tzinfo=UTC).timestamp()
    assert stem_time("20261121T221507Z-cam-01-1a2b3c_p2") is not None
    assert stem_time("ev-1") is None and stem_time("20261399T999999Z-x") is None
    scan = Scan(pending=[_entry("a", 100, 10), _entry("b", 100, 1)])
    captured = {"a": 1.0, "b": 5.0}
    _, evict = choose_evictions(scan, 100, "oldest", set(), lambda e: 0.5,
                                lambda e: captured[e.stem])
    assert [e.stem for e in evict] == ["a"]


def test_announced_markers_name_the_video_and_are_pruned_with_their_clip(
        tmp_path: Path) -> None:
    from uploader_module.announced import Announcements

    marks = Announcements(tmp_path)
    sidecar = write_clip(tmp_path, "ev-7", b"abc")
    assert not marks.sent("ev-7", sidecar.video.sha256)
    marks.record("ev-7", "clip.uploaded/ev-7/1", sidecar.video.sha256)
    assert marks.sent("ev-7", sidecar.video.sha256)
    assert not marks.sent("ev-7", "0" * 64)  # another video under the same stem
    assert marks.prune() == []  # its clip is still there
    (tmp_path / "ev-7.json").unlink()
    assert marks.prune() == ["ev-7"] and not marks.sent("ev-7", sidecar.video.sha256)
