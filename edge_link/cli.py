"""``graffiti-edge method``: call a direct method on a module running in local mode.

Beside :mod:`edge_link.local`, whose methods folder it writes to, so the command and the
module's side of the exchange change together.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from config.registry import MODULES
from infra.commands import Groups, command


def _method(args: argparse.Namespace) -> int:
    from edge_link.local import invoke_local_method

    try:
        payload = json.loads(args.payload) if args.payload else None
    except ValueError as exc:
        sys.stderr.write(f"--payload is not JSON: {exc}\n")
        return 2
    data_dir = args.data_dir or Path("data") / args.module
    try:
        status, result = invoke_local_method(data_dir, args.name, payload, args.timeout)
    except (FileNotFoundError, TimeoutError) as exc:
        sys.stderr.write(f"{exc}\n")
        return 1
    sys.stdout.write(json.dumps({"status": status, "payload": result}, indent=2) + "\n")
    return 0 if 200 <= status < 300 else 1


def add_parser(groups: Groups) -> None:
    """The ``method`` command for ``graffiti-edge``."""
    method = command(
        groups, "method", _method, help="Call a direct method on a module running locally.",
        description="Call a direct method on a module running in local mode (the stand-in for "
        "IoT Hub's direct methods), e.g. `graffiti-edge method --module camera ping`.",
    )
    method.add_argument("name", help="Method name, e.g. ping.")
    method.add_argument("--module", required=True, choices=sorted(MODULES))
    method.add_argument("--payload", help="JSON payload.")
    method.add_argument("--data-dir", type=Path,
                        help="The module's --data-dir (default data/<module>).")
    method.add_argument("--timeout", type=float, default=30.0, help="Seconds to wait.")
