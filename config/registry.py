"""The modules, their settings models and environment prefixes, in one table."""

from __future__ import annotations

from dataclasses import dataclass

from config.camera import CameraSettings
from config.detector import DetectorSettings
from config.fields import Section
from config.uploader import UploaderSettings


@dataclass(frozen=True)
class ModuleSpec:
    """What the shared runtime needs to know about one module."""

    name: str
    settings: type[Section]
    env_prefix: str


MODULES: dict[str, ModuleSpec] = {
    spec.name: spec
    for spec in (
        ModuleSpec("camera", CameraSettings, "CAMERA_"),
        ModuleSpec("detector", DetectorSettings, "DETECTOR_"),
        ModuleSpec("uploader", UploaderSettings, "UPLOADER_"),
    )
}


def module_spec(name: str) -> ModuleSpec:
    """The spec for a module name, with an error that lists the valid names."""
    try:
        return MODULES[name]
    except KeyError:
        raise KeyError(f"unknown module {name!r}; use one of {', '.join(MODULES)}") from None
