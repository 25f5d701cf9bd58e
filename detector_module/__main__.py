"""Entry point: `detector-module` or `python -m detector_module`."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from config.detector import DetectorSettings
from config.registry import DETECTOR
from detector_module.service import DetectorService
from edge_link.runtime import ModuleRuntime, ModuleService, module_main


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, help="Listen on this port (overrides server.port).")
    parser.add_argument("--model", type=Path, metavar="PATH",
                        help="Serve this model package (zip or folder) instead of the bundled "
                        "sample model.")


def build(runtime: ModuleRuntime[DetectorSettings]) -> list[ModuleService[DetectorSettings]]:
    """The module's own services, started once its settings are in force."""
    cli = runtime.options.cli
    return [DetectorService(runtime, model_path=cli.model, port=cli.port)]


def main(argv: Sequence[str] | None = None) -> int:
    return module_main(DETECTOR, build, argv, add_arguments=add_arguments)


if __name__ == "__main__":
    raise SystemExit(main())
