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
from infra.supervision import Workers
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


def _fast_workers(failures: list[Any], max_failures: int = 3) -> Workers:
    return Workers(failures.append, max_failures=max_failures, restart_initial_s=0.01,
                   restart_max_s=0.02)


def test_a_failing_worker_is_logged_reported_and_restarted(
        caplog: pytest.LogCaptureFixture) -> None:
    failures: list[Any] = []
    runs: list[int] = []
    done = threading.Event()

    def flaky() -> None:
        runs.append(1)
        if len(runs) == 1:
            raise ValueError("inference_ms is 'fast'")
        done.set()

    workers = _fast_workers(failures)
    workers.spawn("detect", flaky)
    assert done.wait(5)
    workers.join(5)
    assert len(runs) == 2
    assert [(f.worker, f.restarting) for f in failures] == [("detect", True)]
    assert "ValueError: inference_ms is 'fast'" in failures[0].error
    assert workers.health()["detect"] == {"state": "stopped", "failures": 1,
                                          "lastError": failures[0].error}
    logged = [r for r in caplog.records if r.getMessage() == "worker.failed"]
    assert len(logged) == 1 and logged[0].exc_info is not None
    assert not workers.fatal.is_set()


def test_a_worker_that_keeps_failing_is_given_up_and_the_module_told() -> None:
    failures: list[Any] = []

    def broken() -> None:
        raise RuntimeError("always")

    workers = _fast_workers(failures, max_failures=3)
    workers.spawn("clip-writer", broken)
    assert workers.fatal.wait(5)
    workers.join(5)
    assert [f.restarting for f in failures] == [True, True, False]
    assert workers.not_running() == ["clip-writer"]
    assert workers.health()["clip-writer"]["state"] == "failed"


def test_no_restart_once_stopping() -> None:
    failures: list[Any] = []
    workers = Workers(failures.append, restart_initial_s=10, restart_max_s=10)
    started = threading.Event()

    def fails_once() -> None:
        started.set()
        raise OSError("disk")

    workers.spawn("status", fails_once)
    assert started.wait(5)
    workers.stop()
    workers.join(5)
    assert workers.health()["status"]["state"] in ("stopped", "failed")
    assert len(failures) == 1
