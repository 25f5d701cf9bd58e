"""A detector module running in-process for the API, update and fuzz tests."""

from __future__ import annotations

import json
from pathlib import Path

from config.registry import module_spec
from detector_module.service import DetectorService
from edge_link.runtime import ModuleRuntime, RuntimeOptions
from tests.detector.http import Reply, call, jpeg


def twin_text(**sections: dict) -> str:
    return json.dumps(sections)  # JSON is YAML


class Running:
    """A detector module in-process, wired as ``module_main`` wires it: runtime with a local
    twin file, the service attached and on a free port, the status reporter running."""

    def __init__(self, root: Path, model: Path | None, twin: dict) -> None:
        self.root = root
        self.twin_file = root / "detector.yaml"
        self.data_dir = root / "data"
        self.twin: dict = {"inference": {"cache_dir": str(root / "ov_cache")}, **twin}
        self.twin_file.write_text(twin_text(**self.twin))
        self.runtime = ModuleRuntime(module_spec("detector"),
                                     RuntimeOptions(self.twin_file, self.data_dir, 2),
                                     environ={})
        self.runtime.start()
        self.service = DetectorService(self.runtime, model_path=model, port=0)
        self.runtime.attach(self.service)
        self.service.start()
        self.runtime.reporter.start()
        assert self.service.port is not None
        self.port = self.service.port
        self.stopped = False

    def edit(self, section: str, **values: object) -> None:
        self.twin[section] = {**self.twin.get(section, {}), **values}
        self.twin_file.write_text(twin_text(**self.twin))

    def post(self, path: str, body: bytes | None = None, content_type: str = "image/jpeg"
             ) -> Reply:
        return call(self.port, "POST", path, jpeg() if body is None else body, content_type)

    def get(self, path: str) -> Reply:
        return call(self.port, "GET", path)

    def outputs(self) -> list[dict]:
        path = self.data_dir / "outputs" / "detections.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]

    def reported(self) -> dict:
        """The reported properties once the status reporter has sent what changed (it
        reports shortly after a change; the tests read the state, not that delay)."""
        self.runtime.reporter.report_now()
        return json.loads((self.data_dir / "reported.json").read_text())

    def stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            self.service.stop()
            self.runtime.stop()
