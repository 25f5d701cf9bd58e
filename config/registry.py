"""The modules, their settings models and environment prefixes, in one table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from config.camera import CameraSettings
from config.detector import DetectorSettings
from config.fields import Section
from config.uploader import UploaderSettings

S = TypeVar("S", bound=Section)


@dataclass(frozen=True)
class ModuleSpec(Generic[S]):
    """What the shared runtime needs to know about one module."""

    name: str
    settings: type[S]
    env_prefix: str
    description: str  # the module's --help and its entry in docs


CAMERA: ModuleSpec[CameraSettings] = ModuleSpec(
    "camera", CameraSettings, "CAMERA_",
    "Samples an RTSP camera, asks the detector about frames, and records clips of graffiti "
    "sightings into the outbox.")
DETECTOR: ModuleSpec[DetectorSettings] = ModuleSpec(
    "detector", DetectorSettings, "DETECTOR_",
    "Runs the graffiti detection model (ONNX Runtime with OpenVINO) and serves it over a "
    "Web API.")
UPLOADER: ModuleSpec[UploaderSettings] = ModuleSpec(
    "uploader", UploaderSettings, "UPLOADER_",
    "Uploads finished clips from the outbox to Azure Blob Storage on IoT Edge, losing none "
    "while offline.")
MODULES: dict[str, ModuleSpec[Any]] = {spec.name: spec for spec in (CAMERA, DETECTOR, UPLOADER)}


def module_spec(name: str) -> ModuleSpec[Any]:
    """The spec for a module name, with an error that lists the valid names."""
    try:
        return MODULES[name]
    except KeyError:
        raise KeyError(f"unknown module {name!r}; use one of {', '.join(MODULES)}") from None
