"""``graffiti-edge``: the umbrella command for local use and for the operator's workstation.

Each command group declares its parser beside the code it drives, as an ``add_parser(groups)``
function; this file only collects them. A module image holds only some packages (the camera
image has no ``local_run`` or ``viewer``), so a group whose package is not installed is left
out, while an import error inside an installed package still fails the command.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
from collections.abc import Iterator, Sequence
from types import ModuleType

from infra.logs import setup_logging

# The group modules, in the order ``--help`` lists their commands.
GROUPS = ("config.commands", "local_run.cli", "samples.cli", "edge_link.cli", "cli.deploy",
          "detector_module.cli", "viewer.cli")


def installed_groups() -> Iterator[ModuleType]:
    """The group modules whose package is installed here."""
    for name in GROUPS:
        if importlib.util.find_spec(name.partition(".")[0]) is not None:
            yield importlib.import_module(name)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="graffiti-edge",
        description="Local tools for the graffiti detection modules: check settings files, "
        "print their JSON Schema, call a running module's direct methods.",
    )
    groups = parser.add_subparsers(dest="group", required=True, metavar="COMMAND")
    for group in installed_groups():
        group.add_parser(groups)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging("cli", level=logging.getLevelName(logging.WARNING))
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
