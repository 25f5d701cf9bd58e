"""The IoT Hub link's durable outbound queue, on a real folder: order, bounds, bad files."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from edge_link.outbound import UNREADABLE, OutboundQueue


def _queue(folder: Path, max_count: int = 100, max_bytes: int = 1 << 20) -> OutboundQueue:
    return OutboundQueue(folder, max_count=max_count, max_bytes=max_bytes)


def _drain(queue: OutboundQueue) -> list[tuple[str, str | None, bytes]]:
    """Everything queued, oldest first, each marked done as the link's worker does."""
    sent = []
    while (entry := queue.peek()) is not None:
        sent.append((entry.output, entry.message_id, entry.data))
        queue.done(entry)
    return sent


def test_a_new_queue_on_the_folder_holds_what_was_not_done_in_order(tmp_path: Path) -> None:
    first = _queue(tmp_path)
    for n in range(12):  # past 10: the names must sort as numbers do
        first.put("clips", "clip.uploaded", f"clip.uploaded/ev-{n}/1", b'{"n":%d}' % n)
    done = first.peek()
    assert done is not None
    first.done(done)
    # The first process is gone without a word: the second reads the folder.
    second = _queue(tmp_path)
    assert [m for _, m, _ in _drain(second)] == [f"clip.uploaded/ev-{n}/1" for n in range(1, 12)]
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    second.put("events", "event.started", None, b"{}")
    assert _drain(_queue(tmp_path)) == [("events", None, b"{}")]


def test_the_oldest_go_past_either_bound_and_are_counted(tmp_path: Path,
                                                         caplog: pytest.LogCaptureFixture
                                                         ) -> None:
    queue = _queue(tmp_path, max_count=2, max_bytes=10)
    with caplog.at_level(logging.WARNING):
        queue.put("events", "event.started", "a", b"1111")
        queue.put("events", "event.started", "b", b"2222")
        queue.put("events", "event.started", "c", b"3333")  # over the count: a goes
        queue.put("alerts", "alert.raised", "d", b"44444444")  # over the bytes: b and c go
    assert queue.status() == {"dropped": 3, "setAside": 0}
    assert caplog.text.count("link.message_dropped") == 3
    assert len(list(tmp_path.glob("*.json"))) == 1
    # Bounds lowered between two runs: the oldest over them go at load.
    queue.put("alerts", "alert.raised", "e", b"5")
    smaller = _queue(tmp_path, max_count=1)
    assert [m for _, m, _ in _drain(smaller)] == ["e"] and smaller.dropped == 1


def test_a_message_dropped_while_being_sent_does_not_take_the_next_with_it(tmp_path: Path
                                                                           ) -> None:
    queue = _queue(tmp_path, max_count=2)
    queue.put("events", "event.started", "a", b"1")
    in_flight = queue.peek()
    assert in_flight is not None
    queue.put("events", "event.started", "b", b"2")
    queue.put("events", "event.started", "c", b"3")  # a is dropped while on the wire
    queue.done(in_flight)
    assert [m for _, m, _ in _drain(queue)] == ["b", "c"]


def test_unreadable_files_are_set_aside_by_name_and_the_rest_is_sent(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    queue = _queue(tmp_path)
    queue.put("events", "event.started", "a", b"1")
    queue.put("events", "event.started", "b", b"2")
    good = sorted(tmp_path.glob("*.json"))
    bad = {
        good[0].with_name(f"{int(good[0].stem) + 5:020d}.json"): b"\x00\x01 half a write",
        good[0].with_name(f"{int(good[0].stem) + 6:020d}.json"): json.dumps(
            {"output": "events", "type": 3, "body": "{}"}).encode(),
        tmp_path / "notes.txt": b"someone's notes",
    }
    for path, data in bad.items():
        path.write_bytes(data)
    (tmp_path / f".{good[0].name}.1234abcd.tmp").write_bytes(b"{")  # a write cut short
    with caplog.at_level(logging.ERROR):
        reloaded = _queue(tmp_path)
    assert [m for _, m, _ in _drain(reloaded)] == ["a", "b"]
    assert reloaded.status() == {"dropped": 0, "setAside": 3}
    kept = {p.name.rsplit(".", 1)[0]: p.read_bytes() for p in (tmp_path / UNREADABLE).iterdir()}
    assert kept == {p.name: data for p, data in bad.items()}
    logged = [r.fields["file"] for r in caplog.records  # type: ignore[attr-defined]
              if r.getMessage() == "link.queued_message_unreadable"]
    assert sorted(logged) == sorted(p.name for p in bad)
    assert [p.name for p in tmp_path.iterdir()] == [UNREADABLE]
    # The queue goes on as before.
    reloaded.put("events", "event.started", "c", b"3")
    assert [m for _, m, _ in _drain(_queue(tmp_path))] == ["c"]
