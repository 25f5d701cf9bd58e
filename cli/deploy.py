"""``graffiti-edge deploy genconfig``: the deployment manifest an operator hands to IoT Hub.

The expansion itself is :mod:`cli.deployment`; this file is the command around it, which
decides where the manifest goes and keeps it private (it holds secrets).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from cli.deployment import PLATFORMS, DeploymentError, generate_file
from infra.commands import Groups, command, group
from infra.durable import write_atomic


def _genconfig(args: argparse.Namespace) -> int:
    try:
        manifest = generate_file(args.template, env_file=args.env, platform=args.platform,
                                 refuse_placeholders=not args.allow_placeholders)
    except (DeploymentError, OSError, ValueError) as exc:
        sys.stderr.write(f"genconfig: {exc}\n")
        return 1
    output = args.output or Path("build") / f"deployment.{args.platform}.json"
    # Private before it appears: it holds the registry password and storage keys.
    write_atomic(output, json.dumps(manifest, indent=2) + "\n", mode=0o600)
    sys.stdout.write(f"{output}: deployment manifest for {args.platform} (holds secrets; do "
                     "not commit it)\n")
    return 0


def add_parser(groups: Groups) -> None:
    """The ``deploy`` group (genconfig) for ``graffiti-edge``."""
    commands = group(groups, "deploy", help="Build IoT Edge deployment manifests.")
    genconfig = command(
        commands, "genconfig", _genconfig,
        help="Expand deployment.template.json into a deployment manifest.",
        description="Expand deployment.template.json for one platform: module images from each "
        "module.json, $VARIABLES from --env FILE and the environment (the environment wins), "
        "createOptions serialised (and chunked past 512 characters). The result is what "
        "`az iot edge set-modules --content` and `az iot edge deployment create` take.",
    )
    genconfig.add_argument("--env", type=Path, metavar="FILE",
                           help="Variables file (copy .env.template to .env and fill it in).")
    genconfig.add_argument("--platform", choices=PLATFORMS, default="amd64",
                           help="Image platform (default amd64).")
    genconfig.add_argument("-o", "--output", type=Path, metavar="FILE",
                           help="Where to write (default build/deployment.<platform>.json).")
    genconfig.add_argument("--template", type=Path, default=Path("deployment.template.json"),
                           help="Template (default deployment.template.json).")
    genconfig.add_argument("--allow-placeholders", action="store_true",
                           help="Write even if values are still .env.template <placeholders>.")
