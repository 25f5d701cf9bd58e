"""One ``python -m camera_module`` process on a local twin file, as IoT Edge would run it.

The crash bench and the evidence tests both kill and restart it and read what it sent; the
bench also runs it from another source tree (the baseline commit) to compare costs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from local_run.processes import stop_process

ROOT = Path(__file__).resolve().parents[1]


class CameraProcess:
    """The module's log goes to ``<data_dir>.log`` beside its data folder."""

    def __init__(self, config: Path, data_dir: Path, *, tree: Path = ROOT,
                 twin_wait_s: float = 2.0) -> None:
        self.config, self.data_dir, self.tree = config, data_dir, tree
        self.twin_wait_s = twin_wait_s
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> CameraProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("IOTEDGE_")}
        env["PYTHONPATH"] = str(self.tree)
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        with (self.data_dir.parent / f"{self.data_dir.name}.log").open("ab") as log:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "camera_module", "--config", str(self.config),
                 "--data-dir", str(self.data_dir), "--twin-wait", str(self.twin_wait_s)],
                cwd=self.tree, stdout=log, stderr=log, env=env, start_new_session=True)
        return self

    def kill(self) -> None:
        """SIGKILL, as a power cut or an out-of-memory kill would end it."""
        assert self.popen is not None
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(10)

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            stop_process(self.popen, timeout_s=40)

    def messages(self, msg_type: str) -> list[dict[str, Any]]:
        """Bodies of the messages of ``msg_type`` on output ``events`` so far."""
        path = self.data_dir / "outputs" / "events.jsonl"
        lines = path.read_text().splitlines() if path.exists() else []
        return [doc["body"] for doc in map(json.loads, filter(None, lines))
                if doc["type"] == msg_type]
