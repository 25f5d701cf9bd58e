"""Entry point: `camera-module` or `python -m camera_module`."""

from __future__ import annotations

from collections.abc import Sequence

from camera_module.service import CameraService
from config.camera import CameraSettings
from config.registry import CAMERA
from edge_link.runtime import ModuleRuntime, ModuleService, module_main

DESCRIPTION = (
    "Samples an RTSP camera, asks the detector about frames, and records clips of graffiti "
    "sightings into the outbox."
)


def build(runtime: ModuleRuntime[CameraSettings]) -> list[ModuleService[CameraSettings]]:
    """The module's own services, started once its settings are in force."""
    return [CameraService(runtime)]


def main(argv: Sequence[str] | None = None) -> int:
    return module_main(CAMERA, DESCRIPTION, build, argv)


if __name__ == "__main__":
    raise SystemExit(main())
