"""The local stand-in: a watched YAML twin, JSON-lines outputs, file-based direct methods."""

from __future__ import annotations

import json
import os
import signal
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from config.registry import module_spec
from contracts.messages import (
    ClipUploaded,
    ClipWritten,
    EventStarted,
    WorkerFailed,
    read_message,
)
from edge_link.local import invoke_local_method
from edge_link.runtime import ModuleRuntime, RuntimeOptions
from infra.supervision import Workers
from tests.support.polling import wait_until

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


@pytest.fixture
def twin_file(tmp_path: Path) -> Path:
    path = tmp_path / "camera.yaml"
    path.write_text("trigger:\n  min_score: 0.6\nsampling:\n  detect_fps: 4\n")
    return path


@pytest.fixture
def runtime(twin_file: Path, data_dir: Path) -> Iterator[ModuleRuntime]:
    rt = ModuleRuntime(module_spec("camera"), RuntimeOptions(twin_file, data_dir, twin_wait_s=2),
                       environ={})
    rt.start()
    yield rt
    rt.stop()


def reported(data_dir: Path) -> dict:
    return json.loads((data_dir / "reported.json").read_text())


def test_file_is_the_twin_at_start(runtime: ModuleRuntime, data_dir: Path) -> None:
    assert runtime.link.kind == "local"
    assert runtime.settings.trigger.min_score == 0.6
    assert reported(data_dir)["settings"]["inForce"]["sampling"]["detect_fps"] == 4


def test_edit_applies_live_within_two_seconds(runtime: ModuleRuntime, twin_file: Path) -> None:
    changes: list[tuple[str, ...]] = []
    runtime.subscribe(lambda old, new, changed: changes.append(changed))
    # An editor's save: write a temporary file, then rename it over the original.
    tmp = twin_file.with_name(".camera.yaml.swp")
    tmp.write_text("trigger:\n  min_score: 0.75\nsampling:\n  detect_fps: 4\n")
    os.replace(tmp, twin_file)
    assert wait_until(lambda: runtime.settings.trigger.min_score == 0.75, 2.0)
    # Listeners run just after the new settings are swapped in.
    assert wait_until(lambda: bool(changes), 1.0)
    assert changes == [("trigger.min_score",)]
    # Removing a key from the file falls back to the default, like a null in a twin patch.
    twin_file.write_text("trigger:\n  min_score: 0.75\n")
    assert wait_until(lambda: runtime.settings.sampling.detect_fps == 5.0, 2.0)


def test_broken_yaml_keeps_last_good_and_is_reported(runtime: ModuleRuntime, twin_file: Path,
                                                     data_dir: Path) -> None:
    twin_file.write_text("trigger:\n  min_score: [0.9\n")
    assert wait_until(lambda: reported(data_dir)["settings"]["status"] == "rejected", 2.0)
    error = reported(data_dir)["settings"]["rejected"]["errors"][0]
    assert "not valid YAML" in error["reason"] and error["line"] >= 2
    assert runtime.settings.trigger.min_score == 0.6
    twin_file.write_text("trigger:\n  min_score: 1.5\n")
    assert wait_until(lambda: reported(data_dir)["settings"]["rejected"]["errors"][0]["path"]
                      == "trigger.min_score", 2.0)
    assert runtime.settings.trigger.min_score == 0.6
    twin_file.write_text("trigger:\n  min_score: 0.55\n")
    assert wait_until(lambda: reported(data_dir)["settings"]["status"] == "applied", 2.0)
    assert runtime.settings.trigger.min_score == 0.55


def test_outputs_land_in_json_lines_files(runtime: ModuleRuntime, data_dir: Path) -> None:
    runtime.send(EventStarted(train_id="t1", camera_id="c1", event_id="ev-1", start_utc=NOW,
                              clip_from_utc=NOW))
    runtime.send(ClipWritten(train_id="t1", camera_id="c1", event_id="ev-1", part=1,
                             stem="ev-1", files={"ev-1.mp4": 123}, duration_s=1.0,
                             start_utc=NOW, end_utc=NOW, max_score=0.9, trigger="event"))
    lines = [json.loads(x) for x in (data_dir / "outputs" / "events.jsonl").read_text()
             .splitlines()]
    assert [(x["type"], x["body"]["eventId"]) for x in lines] == [
        ("event.started", "ev-1"), ("clip.written", "ev-1")]
    assert lines[0]["body"]["moduleId"] == "camera_module"
    assert lines[1]["body"]["schemaVersion"] == 1
    assert read_message(lines[1]["type"], lines[1]["body"]).files == {"ev-1.mp4": 123}


def test_direct_method_through_the_methods_folder(runtime: ModuleRuntime, data_dir: Path) -> None:
    runtime.register_method("record", lambda p: (202, {"seconds": p["seconds"]}))
    assert invoke_local_method(data_dir, "record", {"seconds": 20}, 5) == (202, {"seconds": 20})
    status, body = invoke_local_method(data_dir, "missing", None, 5)
    assert status == 404 and "known" in body["error"]


def test_undeclared_output_is_refused(runtime: ModuleRuntime) -> None:
    with pytest.raises(ValueError, match="camera module has no output 'clips'"):
        runtime.send(ClipUploaded(event_id="ev-1", part=1, stem="ev-1", train_id="t1",
                                  camera_id="c1", start_utc=NOW, max_score=0.9,
                                  model_version="1", container="clips", bytes=0, blobs=[]))


def test_reported_properties_pass_through_one_redaction(tmp_path: Path, data_dir: Path) -> None:
    """The runtime redacts every report, whatever the link (this one writes reported.json)."""
    twin = tmp_path / "detector.yaml"
    twin.write_text("model:\n  version: 1.2.0\n  url: https://acct.blob.core.windows.net/m/"
                    "x.zip?sv=2019-07-07&sig=AbC%2Bdef%3D\n")
    rt = ModuleRuntime(module_spec("detector"), RuntimeOptions(twin, data_dir, twin_wait_s=2),
                       environ={})
    rt.start()
    try:
        text = (data_dir / "reported.json").read_text()
        assert "AbC%2Bdef" not in text and "sv=2019" not in text
        assert "https://acct.blob.core.windows.net/m/x.zip?***" in text
    finally:
        rt.stop()


def test_a_worker_that_keeps_failing_ends_the_module_with_exit_code_1(
        runtime: ModuleRuntime, data_dir: Path) -> None:
    def broken() -> None:
        raise RuntimeError("bad detector answer")

    runtime.workers = Workers(runtime._worker_failed, max_failures=2, restart_initial_s=0.01,
                              restart_max_s=0.01)
    runtime.workers.spawn("detect", broken)
    assert runtime.run_until_signalled() == 1
    alerts = [json.loads(x) for x in (data_dir / "outputs" / "alerts.jsonl").read_text()
              .splitlines()]
    assert [(a["type"], a["body"]["worker"], a["body"]["restarting"]) for a in alerts] == [
        ("worker.failed", "detect", True), ("worker.failed", "detect", False)]


@pytest.fixture
def restore_stop_signals() -> Iterator[None]:
    """Signals at their defaults, so that the test sees the runtime install its handler."""
    saved = {sig: signal.signal(sig, signal.SIG_DFL) for sig in (signal.SIGTERM, signal.SIGINT)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def test_sigterm_ends_the_module_with_exit_code_0(runtime: ModuleRuntime,
                                                  restore_stop_signals: None) -> None:
    threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGTERM)).start()
    assert runtime.run_until_signalled() == 0
    assert runtime._stopping.is_set(), "the workers are told to stop"


def test_the_stop_signal_handler_takes_no_lock(runtime: ModuleRuntime,
                                               restore_stop_signals: None) -> None:
    """A handler runs in the main thread wherever it happens to be, possibly while that thread
    holds the lock inside ``Event.wait``; a handler needing that lock hung the module until
    SIGKILL. Here the lock is held while the handler runs: it must return at once."""
    blocked: list[bool] = []

    def signal_while_the_lock_is_held() -> None:
        assert wait_until(lambda: callable(signal.getsignal(signal.SIGTERM)), 5.0)
        handler = signal.getsignal(signal.SIGTERM)
        assert callable(handler)
        with runtime._stopping._cond:  # type: ignore[attr-defined]
            call = threading.Thread(target=handler, args=(signal.SIGTERM, None))
            call.start()
            call.join(2.0)
            blocked.append(call.is_alive())

    helper = threading.Thread(target=signal_while_the_lock_is_held)
    helper.start()
    assert runtime.run_until_signalled() == 0
    helper.join()
    assert blocked == [False]


def test_a_refused_edit_leaves_nothing_of_itself_and_the_next_edit_all_it_says(
        runtime: ModuleRuntime, twin_file: Path, data_dir: Path) -> None:
    """The refused edit removed detect_fps and broke min_score: detect_fps stays in force
    while it is refused; once min_score is fixed, the file (without detect_fps) is what runs."""
    twin_file.write_text("trigger:\n  min_score: 1.5\n")
    assert wait_until(lambda: reported(data_dir)["settings"]["status"] == "rejected", 5.0)
    assert runtime.settings.sampling.detect_fps == 4 and runtime.settings.trigger.min_score == 0.6
    twin_file.write_text("trigger:\n  min_score: 0.7\n")
    assert wait_until(lambda: runtime.settings.trigger.min_score == 0.7, 5.0)
    assert runtime.settings.sampling.detect_fps == 5.0, "removed in the file: back to default"


def test_putting_back_the_file_in_force_clears_the_rejection(runtime: ModuleRuntime,
                                                            twin_file: Path,
                                                            data_dir: Path) -> None:
    good = twin_file.read_text()
    twin_file.write_text("trigger: [unclosed\n")
    assert wait_until(lambda: reported(data_dir)["settings"]["status"] == "rejected", 5.0)
    twin_file.write_text(good)
    assert wait_until(lambda: reported(data_dir)["settings"]["status"] == "applied", 5.0)


@pytest.mark.parametrize(("make", "reason"), [
    (lambda p, real: p.symlink_to(real), "a symbolic link"),
    (lambda p, real: os.mkfifo(p), "not a regular file"),
    (lambda p, real: p.mkdir(), "a folder, not a file"),
])
def test_a_twin_file_that_is_not_a_regular_file_is_refused_never_an_empty_twin(
        tmp_path: Path, data_dir: Path, make: Callable[[Path, Path], object],
        reason: str) -> None:
    """At start the file is refused with its reason and the module runs on its last good
    settings (not on defaults, as an empty twin would give); a regular file put there later
    is read whole."""
    real = tmp_path / "elsewhere.yaml"
    real.write_text("trigger:\n  min_score: 0.9\n")
    (data_dir / "state").mkdir(parents=True)
    (data_dir / "state" / "settings.last_good.json").write_text(
        '{"version": 3, "twin": {"trigger": {"cooldown_s": 20}}}')
    twin = tmp_path / "camera.yaml"
    make(twin, real)
    rt = ModuleRuntime(module_spec("camera"), RuntimeOptions(twin, data_dir, twin_wait_s=60),
                       environ={})
    starting = threading.Thread(target=rt.start, daemon=True)
    starting.start()
    starting.join(30)
    try:
        assert not starting.is_alive(), "start hung on the twin file"
        settings = reported(data_dir)["settings"]
        assert settings["status"] == "rejected" and reason in \
            settings["rejected"]["errors"][0]["reason"]
        assert rt.settings.trigger.cooldown_s == 20 and rt.settings.trigger.min_score == 0.5
        if twin.is_dir():
            twin.rmdir()
        else:
            twin.unlink()
        twin.write_text("trigger:\n  min_score: 0.65\n")
        assert wait_until(lambda: rt.settings.trigger.min_score == 0.65, 5.0)
        assert rt.settings.trigger.cooldown_s == 30, "the file is the whole twin now"
    finally:
        rt.stop()


def test_messages_carry_their_stable_id_in_the_json_lines(runtime: ModuleRuntime,
                                                         data_dir: Path) -> None:
    runtime.send(EventStarted(train_id="t1", camera_id="c1", event_id="ev-2", start_utc=NOW,
                              clip_from_utc=NOW))
    runtime.send(WorkerFailed(worker="detect", error="x", failures=1, restarting=True))
    events = [json.loads(x) for x in (data_dir / "outputs" / "events.jsonl").read_text()
              .splitlines()]
    alerts = [json.loads(x) for x in (data_dir / "outputs" / "alerts.jsonl").read_text()
              .splitlines()]
    assert events[0]["messageId"] == "event.started/ev-2"
    assert alerts[0]["messageId"] is None, "an observation has no stable id"


def test_a_report_over_iot_hubs_limit_is_replaced_by_a_note(runtime: ModuleRuntime,
                                                            data_dir: Path) -> None:
    runtime._report({"diagnostics": {"dump": "x" * 40_000}, "small": {"ok": True}})
    doc = reported(data_dir)
    assert doc["small"] == {"ok": True}
    assert doc["diagnostics"]["dump"]["notReported"]["bytes"] > 40_000
    assert len(json.dumps(doc)) < 32 * 1024
    runtime._report({"diagnostics": {"dump": "short"}})
    assert reported(data_dir)["diagnostics"] == {"dump": "short"}


def test_a_reported_part_the_hub_would_refuse_is_noted_and_cleared_when_it_fits() -> None:
    from edge_link.reported import apply_reported, fit_reported

    held: dict = {}
    fitted, noted = fit_reported(held, {"settings": {"status": "applied",
                                                     "inForce": {"x": {"a b": 1}}}})
    assert [place for place, _ in noted] == ["settings.inForce"]
    assert fitted["settings"]["status"] == "applied", "the rest of the section is reported"
    held = apply_reported(held, fitted)
    fitted, noted = fit_reported(held, {"settings": {"status": "applied",
                                                     "inForce": {"x": {"ab": 1}}}})
    assert noted == [] and apply_reported(held, fitted)["settings"]["inForce"] == {"x": {"ab": 1}}
