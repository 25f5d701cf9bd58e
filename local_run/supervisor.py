"""The local stand-in for edgeAgent: run modules as processes, stop them all, leave nothing.

Each module runs in its own process group with its log in ``<data>/logs/<module>.log``, so a
Ctrl-C or an error in the caller still ends every child (and their children). Each module's
``--data-dir`` is ``<data>/<module>``; the one folder two modules share, the outbox, is
``<data>/outbox``, given to the camera and the uploader through the environment as the
deployment manifest gives them the outbox volume (a twin file that names one still wins).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.logs import event

log = logging.getLogger(__name__)

# Started in this order: the detector takes longest to load, the camera needs both others.
MODULE_ORDER = ("detector", "uploader", "camera")


def shared_outbox(data_root: Path) -> Path:
    """The folder the camera writes clips to and the uploader drains, in a local run."""
    return (data_root / "outbox").absolute()


def _shared_folders(data_root: Path) -> dict[str, str]:
    """Absolute, so that neither module reads it as relative to its own --data-dir."""
    outbox = str(shared_outbox(data_root))
    return {"CAMERA_RECORDING__OUTBOX_DIR": outbox, "UPLOADER_OUTBOX__DIR": outbox}


@dataclass
class ModuleProcess:
    name: str
    process: subprocess.Popen[bytes]
    data_dir: Path
    log_file: Path

    def reported(self) -> dict[str, Any]:
        try:
            return json.loads((self.data_dir / "reported.json").read_text())
        except (OSError, ValueError):
            return {}


class Supervisor:
    """Start modules in local mode with their YAML twins; stop them with SIGTERM, then KILL."""

    def __init__(self, modules: list[str], *, config_dir: Path, data_root: Path,
                 env: dict[str, str] | None = None) -> None:
        self.modules = modules
        self.config_dir = config_dir
        self.data_root = data_root
        self.env = {**os.environ, **_shared_folders(data_root), **(env or {})}
        self.running: list[ModuleProcess] = []

    def start(self) -> None:
        for name in self.modules:
            self.running.append(self._spawn(name))

    def _spawn(self, name: str) -> ModuleProcess:
        logs = self.data_root / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        data_dir = self.data_root / name
        log_file = logs / f"{name}.log"
        command = [sys.executable, "-m", f"{name}_module", "--data-dir", str(data_dir)]
        twin = self.config_dir / f"{name}.yaml"
        if twin.exists():
            command += ["--config", str(twin)]
        env = {k: v for k, v in self.env.items() if not k.startswith("IOTEDGE_")}
        with log_file.open("ab") as sink:
            process = subprocess.Popen(command, stdout=sink, stderr=sink, env=env,
                                       start_new_session=True)
        event(log, logging.INFO, "supervisor.started", module=name, pid=process.pid,
              log=log_file)
        return ModuleProcess(name, process, data_dir, log_file)

    def module(self, name: str) -> ModuleProcess:
        return next(m for m in self.running if m.name == name)

    def restart(self, name: str, *, crash: bool = False) -> ModuleProcess:
        """Stop one module (SIGKILL when ``crash``, as a power cut or OOM kill would) and
        start it again, the way edgeAgent restarts a failed module."""
        old = self.module(name)
        _signal_group(old.process, signal.SIGKILL if crash else signal.SIGTERM)
        try:
            old.process.wait(15)
        except subprocess.TimeoutExpired:
            _signal_group(old.process, signal.SIGKILL)
            old.process.wait()
        event(log, logging.INFO, "supervisor.restarting", module=name, crash=crash,
              exit_code=old.process.returncode)
        new = self._spawn(name)
        self.running[self.running.index(old)] = new
        return new

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Until every module has reported it started; a module that exits is an error."""
        deadline = time.monotonic() + timeout_s
        pending = {m.name: m for m in self.running}
        while pending:
            for name, module in list(pending.items()):
                if module.process.poll() is not None:
                    raise RuntimeError(f"module {name} exited with {module.process.returncode}; "
                                       f"see {module.log_file}")
                if "module" in module.reported():
                    del pending[name]
            if pending and time.monotonic() > deadline:
                raise TimeoutError(f"modules not ready after {timeout_s} s: {sorted(pending)}")
            time.sleep(0.2)

    def stop(self, grace_s: float = 15.0) -> dict[str, int]:
        """SIGTERM every module group, wait, then SIGKILL what is left. Returns exit codes."""
        for module in self.running:
            _signal_group(module.process, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        codes: dict[str, int] = {}
        for module in self.running:
            try:
                codes[module.name] = module.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                event(log, logging.WARNING, "supervisor.killed", module=module.name)
                _signal_group(module.process, signal.SIGKILL)
                codes[module.name] = module.process.wait()
            _signal_group(module.process, signal.SIGKILL)
        self.running = []
        return codes


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)
