"""Fixtures for the uploader tests: a stand-in for the module runtime, outboxes, processes."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from config.layers import merge
from config.store import Listener, changed_paths
from config.uploader import UploaderSettings
from contracts.messages import Message
from edge_link.status import StatusReporter
from infra.supervision import WorkerFailure, Workers
from local_run.processes import stop_process
from uploader_module.service import UploaderService

SCRIPT = Path(sys.executable).parent / "uploader-module"


def wait_for(predicate: Callable[[], Any], timeout_s: float, what: str) -> Any:
    """Poll until ``predicate()`` is truthy; fail naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)


class FakeHost:
    """The runtime as the service sees it (``uploader_module.service.Host``), with settings
    changed by the test, messages kept, and the real status reporter writing into a dict."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self._settings = UploaderSettings.model_validate(doc)
        self._listeners: list[Listener[UploaderSettings]] = []
        self._lock = threading.Lock()
        self.sent: list[tuple[str, str, dict[str, Any]]] = []
        self.reported: dict[str, Any] = {}
        self.reporter = StatusReporter(self._report)
        self.failures: list[WorkerFailure] = []
        self.pokes = 0  # status changes: a housekeeping pass makes one
        self.workers = Workers(self.failures.append, restart_initial_s=0.05,
                               restart_max_s=0.2)

    @property
    def settings(self) -> UploaderSettings:
        return self._settings

    def attach(self, service: UploaderService) -> None:
        """What ``ModuleRuntime.attach`` does with a service (its methods are not called)."""
        self._listeners.append(service.on_settings)
        self.reporter.add(service.status)

    def patch(self, patch: dict[str, Any]) -> None:
        """Apply a twin patch the way the settings store does."""
        old = self._settings
        self.doc = merge(self.doc, patch)
        self._settings = UploaderSettings.model_validate(self.doc)
        changed = tuple(changed_paths(old.model_dump(mode="json"),
                                      self._settings.model_dump(mode="json")))
        for listener in self._listeners:
            listener(old, self._settings, changed)

    def send(self, message: Message) -> None:
        with self._lock:
            self.sent.append((message.OUTPUT.value, message.TYPE, message.body()))

    def status_changed(self) -> None:
        with self._lock:
            self.pokes += 1
        self.reporter.poke()

    def _report(self, patch: dict[str, Any]) -> None:
        with self._lock:
            self.reported.update(patch)

    def messages(self, output: str) -> list[dict[str, Any]]:
        with self._lock:
            return [body for out, _, body in self.sent if out == output]

    def typed(self, output: str) -> list[tuple[str, dict[str, Any]]]:
        """(message type, body) of each message sent to ``output``, in order."""
        with self._lock:
            return [(kind, body) for out, kind, body in self.sent if out == output]

    def upload_status(self) -> dict[str, Any]:
        with self._lock:
            return dict(self.reported.get("upload", {}))


@pytest.fixture
def container() -> str:
    return f"clips-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def outbox(tmp_path: Path) -> Path:
    return tmp_path / "outbox"


def settings_doc(connection_string: str, container: str, folder: Path,
                 **sections: dict[str, Any]) -> dict[str, Any]:
    """Settings for a fast test: short scans and retries, everything else default."""
    doc: dict[str, Any] = {
        "upload": {"connection_string": connection_string, "container": container,
                   "retry": {"initial_s": 0.2, "max_s": 1.0}},
        "outbox": {"dir": str(folder), "scan_interval_s": 1.0, "incomplete_grace_s": 1.0},
    }
    return merge(doc, sections)


class Running:
    """A service started on a fake host the way ``module_main`` starts it."""

    def __init__(self, host: FakeHost) -> None:
        self.host = host
        self.service = UploaderService(host)
        host.attach(self.service)
        self.service.start()
        host.reporter.start()
        self.stopped = False

    def stop(self) -> None:
        """Service first, then the reporter, which reports once more at its stop."""
        if not self.stopped:
            self.stopped = True
            self.service.stop()
            self.host.workers.stop()
            self.host.reporter.stop()


@pytest.fixture
def run_service() -> Iterator[Callable[[FakeHost], Running]]:
    """Start an in-process service on a host; every service started is stopped at the end."""
    started: list[Running] = []

    def run(host: FakeHost) -> Running:
        started.append(Running(host))
        return started[-1]

    yield run
    for running in started:
        running.stop()


class UploaderProcess:
    """``uploader-module`` as a real process in local mode (YAML twin, JSON-lines outputs)."""

    def __init__(self, twin: Path, data_dir: Path, env: dict[str, str]) -> None:
        self.twin, self.data_dir, self.env = twin, data_dir, env
        self.log_file = data_dir.parent / f"{data_dir.name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def write_twin(self, doc: dict[str, Any]) -> None:
        self.twin.write_text(yaml.safe_dump(doc))

    def start(self) -> None:
        with self.log_file.open("ab") as sink:
            self.process = subprocess.Popen(
                [str(SCRIPT), "--config", str(self.twin), "--data-dir", str(self.data_dir),
                 "--twin-wait", "2"], stdout=sink, stderr=sink, env=self.env)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def terminate(self) -> int:
        assert self.process is not None
        return stop_process(self.process, timeout_s=20)

    def log(self) -> str:
        return self.log_file.read_text() if self.log_file.exists() else ""

    def outputs(self, output: str) -> list[dict[str, Any]]:
        path = self.data_dir / "outputs" / f"{output}.jsonl"
        if not path.exists():
            return []
        return [json.loads(line)["body"] for line in path.read_text().splitlines() if line]

    def reported(self) -> dict[str, Any]:
        try:
            return json.loads((self.data_dir / "reported.json").read_text())
        except (OSError, ValueError):
            return {}


@pytest.fixture
def uploader_process(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], UploaderProcess]]:
    """Factory of uploader processes; any still running at the end is killed."""
    made: list[UploaderProcess] = []

    def make(env: dict[str, str]) -> UploaderProcess:
        proc = UploaderProcess(tmp_path / "twin.yaml", tmp_path / f"data{len(made)}", env)
        made.append(proc)
        return proc

    yield make
    for proc in made:
        if proc.process is not None and proc.process.poll() is None:
            proc.kill()
