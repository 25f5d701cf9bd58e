"""Entry point: `detector-module` or `python -m detector_module`."""

from __future__ import annotations

from collections.abc import Sequence

from edge_link.runtime import ModuleRuntime, Service, module_main

DESCRIPTION = (
    "Runs the graffiti detection model (ONNX Runtime with OpenVINO) and serves it over a "
    "Web API."
)


def build(runtime: ModuleRuntime) -> list[Service]:
    """The module's own services, started once its settings are in force."""
    return []


def main(argv: Sequence[str] | None = None) -> int:
    return module_main("detector", DESCRIPTION, build, argv)


if __name__ == "__main__":
    raise SystemExit(main())
