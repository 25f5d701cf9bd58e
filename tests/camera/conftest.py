"""Fixtures for the camera tests: a fake detector and the camera module run in-process.

The module runs exactly as ``camera-module`` would in local mode (the real ModuleRuntime with
its watched YAML twin, JSON-lines outputs and file-based direct methods), only inside the
test process, so a test can read its counters as well as its outputs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from camera_module.__main__ import services
from camera_module.service import CameraService
from config.camera import CameraSettings
from config.registry import CAMERA
from edge_link.runtime import ModuleRuntime, ModuleService, RuntimeOptions
from local_run.fake_detector import FakeDetector
from local_run.processes import free_port
from tests.support.teardown import stopped_at_teardown


@dataclass
class Camera:
    runtime: ModuleRuntime[CameraSettings]
    service: CameraService
    config: Path
    data_dir: Path
    outbox: Path
    others: list[ModuleService[CameraSettings]]  # the module's other services (metrics)

    def messages(self, output: str = "events") -> list[dict[str, Any]]:
        path = self.data_dir / "outputs" / f"{output}.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line]

    def stop(self) -> None:
        for other in reversed(self.others):
            other.stop()
        self.service.stop()
        self.runtime.stop()

    def of_type(self, msg_type: str, output: str = "events") -> list[dict[str, Any]]:
        return [m["body"] for m in self.messages(output) if m["type"] == msg_type]

    def reported(self) -> dict[str, Any]:
        path = self.data_dir / "reported.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def edit(self, doc: dict[str, Any]) -> None:
        """Save a new local twin, as an operator editing the file would."""
        self.config.write_text(yaml.safe_dump(doc))


def twin(url: str, detector_url: str, tmp_path: Path, **sections: dict[str, Any]) -> dict:
    """A camera twin for tests: quick reconnects, 2 s pre-roll, 2-of-3 confirmation."""
    doc: dict[str, Any] = {
        "identity": {"train_id": "test-train", "camera_id": "cam-test", "carriage": "4021",
                     "position": "left"},
        "stream": {"detect_url": url, "open_timeout_s": 5, "read_timeout_s": 2,
                   "stall_timeout_s": 4, "reconnect": {"initial_s": 0.5, "max_s": 2}},
        "sampling": {"detector_url": detector_url, "detect_fps": 5, "request_timeout_s": 1},
        "trigger": {"confirm_window": 3, "confirm_hits": 2, "cooldown_s": 0,
                    "min_score": 0.5},
        "recording": {"pre_roll_s": 2, "post_roll_s": 1.5, "max_clip_s": 30,
                      "on_demand_max_s": 10, "outbox_dir": str(tmp_path / "outbox")},
        "metrics": {"host": "127.0.0.1", "port": free_port()},
    }
    for name, values in sections.items():
        doc[name] = {**doc.get(name, {}), **values}
    return doc


@pytest.fixture
def fake_detector() -> Iterator[FakeDetector]:
    detector = FakeDetector().start()
    try:
        yield detector
    finally:
        detector.stop()


@pytest.fixture
def camera(tmp_path: Path) -> Iterator[Callable[[dict[str, Any]], Camera]]:
    def start(doc: dict[str, Any]) -> Camera:
        config = tmp_path / "camera.yaml"
        config.write_text(yaml.safe_dump(doc))
        data_dir = tmp_path / "data"
        runtime = ModuleRuntime(CAMERA, RuntimeOptions(config_file=config, data_dir=data_dir,
                                                       twin_wait_s=5), environ={})
        runtime.start()
        service, *others = services(runtime)
        assert isinstance(service, CameraService)
        cam = Camera(runtime, service, config, data_dir, Path(doc["recording"]["outbox_dir"]),
                     others)
        for each in (service, *others):  # as module_main does
            runtime.attach(each)
            each.start()
        runtime.reporter.start()
        return cam

    yield from stopped_at_teardown(start)
