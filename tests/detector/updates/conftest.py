"""Fixtures for the model update tests: packages, a package server, a running detector."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.detector.models import sample_manifest, yolov8_model
from tests.detector.running import Running
from tests.detector.updates.server import PackageServer
from tests.support.teardown import stopped_at_teardown

ROWS = [[160, 160, 64, 32, 0.9, 0.1]]


def md5_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()  # noqa: S324


def package_bytes(version: str, *, pad: int = 0, model: bytes | None = None,
                  labels: bool = True, extra: dict[str, bytes] | None = None,
                  name: str = "graffiti-test") -> bytes:
    """A package zip in memory; ``pad`` adds that many incompressible bytes."""
    manifest = {**sample_manifest(320, 320), "name": name, "version": version}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("model.onnx", model if model is not None else yolov8_model(ROWS, 2))
        if labels:
            zf.writestr("labels.txt", "graffiti\nperson\n")
        else:
            manifest.pop("labels_file")
        zf.writestr("manifest.json", json.dumps(manifest))
        if pad:
            zf.writestr("padding.bin", os.urandom(pad))
        for member, data in (extra or {}).items():
            zf.writestr(member, data)
    return buf.getvalue()


def package_file(path: Path, version: str) -> bytes:
    """A package zip of ``version`` written at ``path`` (a file:// drop); returns its bytes."""
    data = package_bytes(version)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


def unpacked(folder: Path, version: str, name: str = "graffiti-test") -> Path:
    """A package folder (as the repository keeps one) of ``version``."""
    folder.mkdir(parents=True)
    with zipfile.ZipFile(io.BytesIO(package_bytes(version, name=name))) as zf:
        zf.extractall(folder)
    return folder


#: A running detector; its twin (a dict) may hold a ``model`` section.
Detector = Running


@pytest.fixture
def server() -> Iterator[PackageServer]:
    with PackageServer() as srv:
        yield srv


@pytest.fixture
def base_package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("base") / "graffiti-test-1.0.0.zip"
    path.write_bytes(package_bytes("1.0.0"))
    return path


@pytest.fixture
def detector(tmp_path: Path, base_package: Path) -> Iterator[Callable[..., Detector]]:
    """Start a detector whose repository is tmp_path/repo; stops every one started."""
    def _start(model: Path | None = base_package, desired: dict | None = None,
               **repo: object) -> Detector:
        repository = {"dir": str(tmp_path / "repo"), "retry": {"initial_s": 0.05, "max_s": 0.2},
                      "read_timeout_s": 5, "connect_timeout_s": 2, **repo}
        twin: dict = {"model_repository": repository}
        if desired is not None:
            twin["model"] = desired
        return Detector(tmp_path, model, twin)
    yield from stopped_at_teardown(_start)
