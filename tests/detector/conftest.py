"""Shared fixtures for the detector tests: a package builder, a model loader and running
detectors."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from contracts.detection import Detection
from detector_module.backends import InferenceOptions
from detector_module.detection import PostProcess
from detector_module.engine import LoadedModel, load_model
from detector_module.package import load_package
from tests.detector.models import ROWS, sample_manifest, write_package, yolov8_model
from tests.detector.running import Running
from tests.support.teardown import stopped_at_teardown

Loader = Callable[..., LoadedModel]


@pytest.fixture
def load(tmp_path: Path) -> Loader:
    """Build a package from model bytes and labels, load it on the default provider."""
    def _load(model: bytes, labels: list[str], manifest: dict | None = None, *,
              model_file: str = "model.onnx", options: InferenceOptions | None = None
              ) -> LoadedModel:
        path = write_package(tmp_path / f"pkg{len(list(tmp_path.iterdir()))}.zip", model,
                             labels, manifest, model_file)
        return load_model(load_package(path), options or InferenceOptions(cache_dir=None))
    return _load


def detect(model: LoadedModel, width: int, height: int, **params: object) -> list[Detection]:
    image = np.zeros((height, width, 3), np.uint8)
    return model.detect(image, PostProcess(**params))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_package(tmp_path_factory.mktemp("pkg") / "graffiti-sample-1.0.0.zip",
                         yolov8_model(ROWS, 2), ["graffiti", "person"],
                         sample_manifest(320, 320))


@pytest.fixture
def start(tmp_path: Path, package: Path) -> Iterator[Callable[..., Running]]:
    def _start(model: Path | None = package, **twin: dict) -> Running:
        return Running(tmp_path, model, twin)
    yield from stopped_at_teardown(_start)


@pytest.fixture
def api(start: Callable[..., Running]) -> Running:
    running = start()
    assert running.service.wait_ready(10)
    return running
