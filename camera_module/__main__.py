"""Entry point: `camera-module` or `python -m camera_module`."""

from __future__ import annotations

from collections.abc import Sequence

from camera_module.service import CameraService
from config.registry import CAMERA
from edge_link.runtime import module_main


def main(argv: Sequence[str] | None = None) -> int:
    return module_main(CAMERA, lambda runtime: [CameraService(runtime)], argv)


if __name__ == "__main__":
    raise SystemExit(main())
