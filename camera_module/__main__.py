"""Entry point: `camera-module` or `python -m camera_module`."""

from __future__ import annotations

from collections.abc import Sequence

from camera_module.exposition import MetricsService
from camera_module.service import CameraService
from config.camera import CameraSettings
from config.registry import CAMERA
from edge_link.runtime import ModuleRuntime, ModuleService, module_main


def services(runtime: ModuleRuntime[CameraSettings]) -> list[ModuleService[CameraSettings]]:
    camera = CameraService(runtime)
    return [camera, MetricsService(runtime, camera.status)]


def main(argv: Sequence[str] | None = None) -> int:
    return module_main(CAMERA, services, argv)


if __name__ == "__main__":
    raise SystemExit(main())
