"""The OpenVINO build of ONNX Runtime must be the one installed, and stay so."""

from __future__ import annotations

import tomllib
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import onnxruntime
import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_openvino_execution_provider_is_available() -> None:
    assert "OpenVINOExecutionProvider" in onnxruntime.get_available_providers()


def test_plain_onnxruntime_is_not_installed() -> None:
    """Plain onnxruntime shares the onnxruntime/ folder and silently drops OpenVINO."""
    distribution("onnxruntime-openvino")
    with pytest.raises(PackageNotFoundError):
        distribution("onnxruntime")


def test_no_dependency_names_plain_onnxruntime() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        requirements += extra
    names = [r.split(";")[0].split("[")[0].split("<")[0].split(">")[0].split("=")[0].strip()
             for r in requirements]
    assert "onnxruntime" not in names and "onnxruntime-gpu" not in names
