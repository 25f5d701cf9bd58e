"""The uploader under faults of its own making: bad credentials, bugs, crashes at the worst
moment, a rewritten clip. In-process service, real Azurite."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from samples.clips import at, video_bytes, write_clip
from tests.support.azurite import Azurite, connection_string
from tests.uploader.conftest import FakeHost, Running, settings_doc, wait_for
from uploader_module.claims import Claims
from uploader_module.eviction import QuotaKeeper
from uploader_module.service import UploaderService

pytestmark = pytest.mark.integration

RunService = Callable[[FakeHost], Running]
BAD_KEY = "not-base64!!"


class Crash(BaseException):
    """Stands in for SIGKILL at one line: nothing after it runs (not even the supervisor)."""


@pytest.fixture
def crashes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Threads ended by :class:`Crash` (other uncaught thread errors still fail the test)."""
    ended: list[str] = []
    default = threading.excepthook

    def hook(args: Any) -> None:
        if args.exc_type is Crash:
            ended.append(args.thread.name if args.thread else "?")
        else:
            default(args)

    monkeypatch.setattr(threading, "excepthook", hook)
    return ended


def test_malformed_account_key_is_a_named_setting_error_logged_once(
        azurite: Azurite, container: str, outbox: Path, run_service: RunService,
        caplog: pytest.LogCaptureFixture) -> None:
    write_clip(outbox, "ev-key", video_bytes(10_000, seed=1))
    conn = azurite.connection_string.replace(
        azurite.connection_string.split("AccountKey=")[1].split(";")[0], BAD_KEY)
    host = FakeHost(settings_doc(conn, container, outbox))
    run_service(host)
    status = wait_for(lambda: (s := host.upload_status()).get("state") == "not_configured"
                      and s, 20, "the bad key to be reported")
    error = status["lastError"]
    assert error["kind"] == "config" and "AccountKey is not valid base64" in error["message"]
    # Several housekeeping passes (each wakes the workers, who try again) ...
    seen = host.pokes
    wait_for(lambda: host.pokes >= seen + 3, 20, "three more housekeeping passes")
    # ... and still one line for the one state change, no traceback, no key, files kept.
    lines = [r for r in caplog.records if r.getMessage().startswith("upload.")]
    assert [r.getMessage() for r in lines] == ["upload.not_configured"]
    assert not [r for r in caplog.records if r.exc_info]
    assert BAD_KEY not in caplog.text and BAD_KEY not in str(host.reported)
    assert host.upload_status()["state"] == "not_configured"
    assert host.messages("clips") == []
    assert (outbox / "ev-key.json").exists()


def test_a_worker_that_raises_is_alerted_restarted_and_goes_on(
        azurite: Azurite, container: str, outbox: Path, run_service: RunService,
        monkeypatch: pytest.MonkeyPatch) -> None:
    real_claim = Claims.claim
    failed: dict[str, int] = {"claim": 0, "quota": 0}

    def claim_once_broken(self: Claims, pending: Any) -> Any:
        if not failed["claim"]:
            failed["claim"] += 1
            raise RuntimeError("a bug in the claim")
        return real_claim(self, pending)

    real_enforce = QuotaKeeper.enforce

    def enforce_once_broken(self: QuotaKeeper, scan: Any, outbox_settings: Any) -> bool:
        if not failed["quota"]:
            failed["quota"] += 1
            raise KeyError("a bug in the quota")
        return real_enforce(self, scan, outbox_settings)

    monkeypatch.setattr(Claims, "claim", claim_once_broken)
    monkeypatch.setattr(QuotaKeeper, "enforce", enforce_once_broken)
    write_clip(outbox, "ev-bug", video_bytes(10_000, seed=2))
    host = FakeHost(settings_doc(azurite.connection_string, container, outbox,
                                 upload={"max_concurrency": 1}))
    run_service(host)
    wait_for(lambda: host.messages("clips"), 30, "the upload after the restarts")
    by_worker = {f.worker: f for f in host.failures}
    assert set(by_worker) == {"uploader-0", "uploader-scan"}
    assert all(f.restarting and f.failures == 1 for f in host.failures)
    assert "a bug in the claim" in by_worker["uploader-0"].error
    health = host.workers.health()
    assert health["uploader-0"]["state"] == "running"
    assert health["uploader-scan"]["state"] == "running"


def test_an_unexpected_error_on_one_clip_is_reported_and_retried(
        azurite: Azurite, container: str, outbox: Path, run_service: RunService,
        monkeypatch: pytest.MonkeyPatch) -> None:
    real_upload = UploaderService._upload
    tries: list[str] = []

    def upload_failing_twice(self: UploaderService, target: Any, files: Any,
                             sidecar: Any) -> Any:
        tries.append(files.stem)
        if len(tries) <= 2:
            raise ValueError("odd state")
        return real_upload(self, target, files, sidecar)

    monkeypatch.setattr(UploaderService, "_upload", upload_failing_twice)
    write_clip(outbox, "ev-odd", video_bytes(10_000, seed=3))
    host = FakeHost(settings_doc(azurite.connection_string, container, outbox))
    run_service(host)
    status = wait_for(lambda: (s := host.upload_status()).get("internalErrors", 0) >= 1
                      and s, 20, "the error to be reported")
    assert status["lastError"]["kind"] == "internal"
    assert "ValueError: odd state" in status["lastError"]["message"]
    wait_for(lambda: host.messages("clips"), 30, "the clip after its retries")
    assert host.failures == []  # the worker itself never failed


@pytest.mark.parametrize("where", ["after_message", "during_clean_up"])
def test_a_crash_after_the_message_never_announces_the_clip_twice(
        azurite: Azurite, container: str, outbox: Path, run_service: RunService,
        monkeypatch: pytest.MonkeyPatch, crashes: list[str], where: str) -> None:
    write_clip(outbox, "ev-once", video_bytes(300_000, seed=4), start=at(1))
    host = FakeHost(settings_doc(azurite.connection_string, container, outbox,
                                 upload={"block_size_mb": 0.1}))
    real_remove = UploaderService._remove_local

    def crash(self: UploaderService, files: Any) -> bool:
        if where == "during_clean_up":
            files.video.unlink()  # half-way: the video is gone, the sidecar not yet
        raise Crash

    monkeypatch.setattr(UploaderService, "_remove_local", crash)
    first = run_service(host)
    wait_for(lambda: crashes, 30, "the crash")
    first.stop()
    assert len(host.messages("clips")) == 1
    monkeypatch.setattr(UploaderService, "_remove_local", real_remove)
    again = FakeHost(host.doc)
    run_service(again)
    wait_for(lambda: not list(outbox.glob("ev-once.*")), 30, "the clean-up after the restart")
    assert again.messages("clips") == []  # announced once, by the first run
    wait_for(lambda: not list((outbox / "announced").iterdir()), 10, "the marker to go")
    assert host.messages("clips")[0]["eventId"] == "ev-once"


def test_a_crash_before_the_message_announces_the_clip_once_after_restart(
        azurite: Azurite, container: str, outbox: Path, run_service: RunService,
        monkeypatch: pytest.MonkeyPatch, crashes: list[str]) -> None:
    write_clip(outbox, "ev-late", video_bytes(20_000, seed=5))
    host = FakeHost(settings_doc(azurite.connection_string, container, outbox))

    def crash(message: Any) -> None:
        raise Crash

    monkeypatch.setattr(host, "send", crash)
    first = run_service(host)
    wait_for(lambda: crashes, 30, "the crash")
    first.stop()
    again = FakeHost(host.doc)
    run_service(again)
    wait_for(lambda: again.messages("clips"), 30, "the message after the restart")
    wait_for(lambda: not list(outbox.glob("ev-late.*")), 10, "the clean-up")
    assert [m["eventId"] for m in again.messages("clips")] == ["ev-late"]


def test_eviction_takes_the_oldest_capture_not_the_oldest_file(
        container: str, outbox: Path, run_service: RunService) -> None:
    now = time.time()
    # ev-first was recorded first but rewritten last (a retry after a full disk).
    write_clip(outbox, "ev-first", video_bytes(400_000, seed=1), start=at(0), mtime=now)
    write_clip(outbox, "ev-second", video_bytes(400_000, seed=2), start=at(5),
               mtime=now - 100)
    write_clip(outbox, "ev-third", video_bytes(400_000, seed=3), start=at(10), mtime=now - 50)
    host = FakeHost(settings_doc(connection_string(1), container, outbox,
                                 outbox={"quota_mb": 1.0}))
    run_service(host)
    kind, alert = wait_for(lambda: host.typed("alerts"), 20, "an eviction alert")[0]
    assert kind == "clip.evicted" and alert["eventId"] == "ev-first"
    assert sorted(p.name for p in outbox.glob("*.json")) == ["ev-second.json", "ev-third.json"]


def test_announced_markers_left_by_a_crash_are_pruned(
        azurite: Azurite, container: str, outbox: Path, run_service: RunService,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    (outbox / "announced").mkdir(parents=True)
    (outbox / "announced" / "ev-gone.json").write_text('{"sha256": "0"}')
    host = FakeHost(settings_doc(azurite.connection_string, container, outbox))
    run_service(host)
    wait_for(lambda: not (outbox / "announced" / "ev-gone.json").exists(), 10, "the prune")
