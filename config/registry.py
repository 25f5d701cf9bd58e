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


CAMERA: ModuleSpec[CameraSettings] = ModuleSpec("camera", CameraSettings, "CAMERA_")
DETECTOR: ModuleSpec[DetectorSettings] = ModuleSpec("detector", DetectorSettings, "DETECTOR_")
UPLOADER: ModuleSpec[UploaderSettings] = ModuleSpec("uploader", UploaderSettings, "UPLOADER_")
MODULES: dict[str, ModuleSpec[Any]] = {spec.name: spec for spec in (CAMERA, DETECTOR, UPLOADER)}


def module_spec(name: str) -> ModuleSpec[Any]:
    """The spec for a module name, with an error that lists the valid names."""
    try:
        return MODULES[name]
    except KeyError:
        raise KeyError(f"unknown module {name!r}; use one of {', '.join(MODULES)}") from None
