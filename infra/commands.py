"""The one way a command group declares its sub-commands (for ``graffiti-edge``).

Every group lives next to the code it drives (``config/commands.py``, ``local_run/cli.py``,
...) and declares each sub-command with :func:`command`, so a command's ``--help`` always says
what it does and ``args.func`` always runs it.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

Groups = argparse._SubParsersAction  # noqa: SLF001 - argparse has no public name for it
Handler = Callable[[argparse.Namespace], int]


def command(parent: Groups, name: str, func: Handler, *, help: str,
            description: str | None = None) -> argparse.ArgumentParser:
    """A sub-command run by ``func``; its arguments are for the caller to add."""
    parser: argparse.ArgumentParser = parent.add_parser(name, help=help,
                                                        description=description or help)
    parser.set_defaults(func=func)
    return parser


def group(parent: Groups, name: str, *, help: str) -> Groups:
    """A command group (``graffiti-edge config ...``) that needs one of its sub-commands."""
    parser = parent.add_parser(name, help=help, description=help)
    return parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
