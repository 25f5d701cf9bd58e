"""The OpenVINO build of ONNX Runtime must be the one installed, and stay so."""

from __future__ import annotations

import tomllib
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import onnxruntime
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_openvino_execution_provider_is_available() -> None:
    assert "OpenVINOExecutionProvider" in onnxruntime.get_available_providers()


def test_plain_onnxruntime_is_not_installed() -> None:
    """Plain onnxruntime shares the onnxruntime/ folder and silently drops OpenVINO."""
    distribution("onnxruntime-openvino")
    with pytest.raises(PackageNotFoundError):
        distribution("onnxruntime")


def _requirements() -> list[Requirement]:
    requirements = list(PROJECT["dependencies"])
    for extra in PROJECT["optional-dependencies"].values():
        requirements += extra
    return [Requirement(r) for r in requirements]


def _applies_on(requirement: Requirement, machine: str) -> bool:
    """Whether pip would install this requirement on a Linux machine of that architecture."""
    if requirement.marker is None:
        return True
    environment = {"platform_machine": machine, "sys_platform": "linux",
                   "platform_system": "Linux", "extra": ""}
    return requirement.marker.evaluate(environment)


def test_no_dependency_names_plain_onnxruntime() -> None:
    """On x86_64 only the OpenVINO build may ever be installed, whatever the extras.

    arm64 has no onnxruntime-openvino wheel and takes plain onnxruntime there, so the check is
    on what applies to x86_64 rather than on names alone.
    """
    on_x86 = {r.name for r in _requirements() if _applies_on(r, "x86_64")}
    assert "onnxruntime-openvino" in on_x86
    assert not on_x86 & {"onnxruntime", "onnxruntime-gpu"}


def _installed_closure(names: set[str]) -> set[str]:
    """The installed distributions ``names`` pull in, transitively, as this machine's pip
    resolved them (requirements behind an extra of theirs left out, as pip leaves them)."""
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = canonicalize_name(todo.pop())
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = distribution(name).requires or []
        except PackageNotFoundError:
            continue
        todo += [r.name for r in map(Requirement, requires)
                 if r.marker is None or r.marker.evaluate({"extra": ""})]
    return seen


def test_no_installed_dependency_pulls_in_plain_onnxruntime() -> None:
    """A dependency of a dependency can name plain onnxruntime too (a test-only SDK, say):
    walk what every requirement installed here pulls in."""
    own = {r.name for r in _requirements() if _applies_on(r, "x86_64")} - {PROJECT["name"]}
    closure = _installed_closure(own)
    assert {"azure-cognitiveservices-vision-customvision", "msrest"} <= closure
    assert "onnxruntime-openvino" in closure
    assert not closure & {"onnxruntime", "onnxruntime-gpu"}


def test_arm64_gets_exactly_one_onnxruntime() -> None:
    on_arm = {r.name for r in _requirements() if _applies_on(r, "aarch64")}
    assert on_arm & {"onnxruntime", "onnxruntime-openvino"} == {"onnxruntime"}


def _names(requirements: list[str]) -> set[str]:
    return {Requirement(r).name for r in requirements}


def test_each_module_extra_installs_only_what_that_module_needs() -> None:
    """Images install ``.[<module>]``: the camera needs no ONNX Runtime, the uploader neither
    PyAV nor ONNX Runtime (nor OpenCV); the base list is what all of them share."""
    base = _names(PROJECT["dependencies"])
    extras = {name: base | _names(PROJECT["optional-dependencies"][name])
              for name in ("camera", "detector", "uploader")}
    onnx = {"onnxruntime", "onnxruntime-openvino"}
    assert not extras["camera"] & onnx
    assert not extras["uploader"] & {*onnx, "av", "opencv-python-headless", "numpy"}
    assert onnx <= extras["detector"] and "av" not in extras["detector"]


def test_dev_installs_every_module_extra() -> None:
    """``make test`` and ``make demo`` install ``.[dev]`` and run all three modules."""
    dev = [Requirement(r) for r in PROJECT["optional-dependencies"]["dev"]]
    own = [r for r in dev if r.name == "graffiti-edge"]
    assert [sorted(r.extras) for r in own] == [["camera", "detector", "uploader"]]
