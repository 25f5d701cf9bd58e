"""Shared fixtures for the detector tests: a package builder and a model loader."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from contracts.detection import Detection
from detector_module.backends import InferenceOptions
from detector_module.detection import PostProcess
from detector_module.engine import LoadedModel, load_model
from detector_module.package import load_package
from tests.detector.models import write_package

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
