"""``graffiti-edge config``: check settings files, print their JSON Schema and reference.

It imports nothing outside ``config``, so the command works in every module image, where an
operator checks a settings file before pointing a module at it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from config.check import check_file
from config.registry import MODULES, module_spec
from infra.commands import Groups, command, group


def _check(args: argparse.Namespace) -> int:
    errors = sorted(check_file(args.file, args.module), key=lambda e: (e.line or 0, e.path))
    for err in errors:
        sys.stdout.write(f"{err}\n")
    if errors:
        sys.stdout.write(f"{args.file}: {len(errors)} error(s) for the {args.module} module\n")
        return 1
    sys.stdout.write(f"{args.file}: valid settings for the {args.module} module\n")
    return 0


def _schema(args: argparse.Namespace) -> int:
    spec = module_spec(args.module)
    schema = spec.settings.model_json_schema()
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema,
              "title": f"graffiti-edge {spec.name} module settings"}
    sys.stdout.write(json.dumps(schema, indent=2) + "\n")
    return 0


def _docs(args: argparse.Namespace) -> int:
    from config.reference import replace_reference, settings_reference

    if args.write is None:
        sys.stdout.write(settings_reference() + "\n")
        return 0
    args.write.write_text(replace_reference(args.write.read_text()))
    return 0


def add_parser(groups: Groups) -> None:
    """The ``config`` group (check, schema, docs) for ``graffiti-edge``."""
    commands = group(groups, "config", help="Check settings files and print their schema.")
    check = command(
        commands, "check", _check, help="Validate a YAML settings file; exit 1 naming every error.",
        description="Validate a YAML settings (or local twin) file against a module's settings "
        "model. Prints every error with file, line, field path and reason; exits 1 if any.",
    )
    check.add_argument("file", type=Path, help="YAML file to check.")
    check.add_argument("--module", required=True, choices=sorted(MODULES))
    schema = command(
        commands, "schema", _schema, help="Print a module's settings as JSON Schema.",
        description="Print the JSON Schema of a module's settings (for editor completion, "
        "e.g. the YAML language server's `# yaml-language-server: $schema=` comment).",
    )
    schema.add_argument("--module", required=True, choices=sorted(MODULES))
    docs = command(
        commands, "docs", _docs,
        help="Print (or rewrite in a Markdown file) the settings reference.",
        description="Print the settings reference generated from the models, or replace the "
        "generated section of a Markdown file with it (--write docs/configuration.md).",
    )
    docs.add_argument("--write", type=Path, metavar="FILE", help="Markdown file to update.")
