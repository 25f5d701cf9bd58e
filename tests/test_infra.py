"""Small infrastructure: durable writes, percentiles, the throttle's unit, the status reporter."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest

from edge_link.status import StatusReporter
from infra.durable import write_atomic
from infra.stats import percentile
from infra.throttle import KB, Throttle


def test_write_atomic_replaces_whole_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "state" / "active.json"
    write_atomic(target, '{"v": 1}')
    write_atomic(target, b'{"v": 2}', mode=0o600)
    assert target.read_bytes() == b'{"v": 2}'
    assert target.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in target.parent.iterdir()] == ["active.json"]


def test_write_atomic_keeps_the_old_file_when_the_write_fails(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "active.json"
    write_atomic(target, "old")

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space"):
        write_atomic(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["active.json"]


def test_percentile_interpolates_on_a_0_to_100_scale() -> None:
    assert percentile(range(1, 11), 50) == 5.5
    assert percentile(range(101), 95) == 95.0
    assert percentile([4.0], 99) == 4.0
    assert percentile([], 50) is None
    with pytest.raises(ValueError, match="between 0 and 100"):
        percentile([1, 2], 0.95 * 100 + 10)


def test_kbps_means_1000_bytes_per_second() -> None:
    now = [0.0]
    throttle = Throttle.kbps(8, clock=lambda: now[0])
    assert KB == 1000
    assert throttle.reserve(8000) == 0.0  # one second of burst
    assert throttle.reserve(4000) == pytest.approx(0.5)


class Sections:
    def __init__(self) -> None:
        self.value: dict[str, Any] = {"a": {"n": 1}, "b": {"n": 1}}

    def __call__(self) -> dict[str, Any]:
        return self.value


def test_reporter_sends_only_sections_that_changed() -> None:
    sent: list[dict[str, Any]] = []
    source = Sections()
    reporter = StatusReporter(sent.append, interval_s=60)
    reporter.add(source)
    reporter.report_now()
    source.value["a"]["n"] = 2  # changed in place: the reporter kept a copy
    reporter.report_now()
    reporter.report_now()
    assert sent == [{"a": {"n": 1}, "b": {"n": 1}}, {"a": {"n": 2}}]


def test_reporter_reports_soon_after_a_poke_and_once_more_at_stop() -> None:
    sent: list[dict[str, Any]] = []
    arrived = threading.Event()
    source = Sections()

    def report(patch: dict[str, Any]) -> None:
        sent.append(patch)
        arrived.set()

    reporter = StatusReporter(report, interval_s=60)
    reporter.add(source)
    reporter.start()
    reporter.poke()
    assert arrived.wait(5), "a poke must not wait for the 60 s interval"
    source.value = {"a": {"n": 3}}
    reporter.stop()
    assert sent[-1] == {"a": {"n": 3}}


def test_a_failing_source_does_not_stop_the_others() -> None:
    sent: list[dict[str, Any]] = []

    def broken() -> dict[str, Any]:
        raise RuntimeError("boom")

    reporter = StatusReporter(sent.append)
    reporter.add(broken)
    reporter.add(lambda: {"ok": True})
    reporter.report_now()
    assert sent == [{"ok": True}]
