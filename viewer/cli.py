"""``graffiti-edge viewer``: serve the operator page (default) or export a training set.

``add_parser(groups)`` plugs the command into ``cli/main.py``; ``python -m viewer`` runs the
same options on their own.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from contracts.blob_layout import API_VERSION, CONTAINER
from infra.logs import event, setup_logging
from viewer.settings import ViewerSettings, connection_string_from_env, read_token

log = logging.getLogger("viewer")


def _defaults(suppress: bool) -> Callable[[object], object]:
    """Option defaults; suppressed on a sub-command, so that an option given before the
    sub-command name is not reset by the sub-command's own default."""
    return lambda value: argparse.SUPPRESS if suppress else value


def _storage_options(parser: argparse.ArgumentParser, suppress: bool) -> None:
    default = _defaults(suppress)
    parser.add_argument("--container", default=default(CONTAINER),
                        help=f"Blob container of the clips (default {CONTAINER}).")
    parser.add_argument("--api-version", default=default(API_VERSION),
                        help=f"Storage API version (default {API_VERSION}, what Blob on Edge "
                        "accepts).")
    parser.add_argument("--log-level", default=default("INFO"),
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument("--demo", action="store_true", default=default(False),
                        help="The clips of the last `graffiti-edge demo` run: starts Azurite on "
                        "its data (DATA_DIR/demo/azurite) for as long as this command runs.")
    parser.add_argument("--data-dir", type=Path, default=default(Path("data")),
                        help="The demo's --data-dir (default data); used with --demo.")


def _serve_options(parser: argparse.ArgumentParser, suppress: bool) -> None:
    default = _defaults(suppress)
    parser.add_argument("--host", default=default("127.0.0.1"),
                        help="Address to serve on (default 127.0.0.1; any other needs a token).")
    parser.add_argument("--port", type=int, default=default(8090),
                        help="TCP port (default 8090).")
    parser.add_argument("--token-file", type=Path, default=default(None),
                        help="File holding the access token (else GRAFFITI_VIEWER_TOKEN).")
    parser.add_argument("--allow-host", action="append", dest="allowed_hosts",
                        default=default([]), metavar="NAME",
                        help="Host header name accepted besides loopback names on a loopback "
                        "bind (e.g. a local reverse proxy's); may be repeated.")


def _settings(args: argparse.Namespace, **extra: Any) -> ViewerSettings:
    connection_string = getattr(args, "connection_string", None) or connection_string_from_env()
    return ViewerSettings(connection_string=connection_string, container=args.container,
                          api_version=args.api_version, **extra)


def _with_demo(command: Callable[[argparse.Namespace], int]) -> Callable[
        [argparse.Namespace], int]:
    """``command`` run against the demo's Azurite when ``--demo`` is given."""
    def run(args: argparse.Namespace) -> int:
        if not args.demo:
            return command(args)
        from local_run.azurite import demo_blob_store

        try:
            with demo_blob_store(args.data_dir) as connection_string:
                args.connection_string = connection_string
                return command(args)
        except (FileNotFoundError, RuntimeError) as exc:
            sys.stderr.write(f"--demo: {exc}\n")
            return 1
    return run


def _terminal(command: Callable[[argparse.Namespace, ViewerSettings], int]) -> Callable[
        [argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        setup_logging("viewer", level=args.log_level)
        settings = _settings(args)
        problems = [p for p in settings.problems() if "connection string" in p]
        if problems:
            sys.stderr.write(f"clips: {problems[0]}\n")
            return 2
        return command(args, settings)
    return _with_demo(run)


def _serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from viewer.app import make_app
    from viewer.store import StoreError

    setup_logging("viewer", level=args.log_level)
    try:
        token = read_token(args.token_file)
        settings = _settings(args, host=args.host, port=args.port, token=token,
                             allowed_hosts=args.allowed_hosts)
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"viewer: {exc}\n")
        return 2
    problems = settings.problems()
    if problems:
        for problem in problems:
            sys.stderr.write(f"viewer: {problem}\n")
        return 2
    try:
        app = make_app(settings)
    except StoreError as exc:
        sys.stderr.write(f"viewer: {exc}\n")
        return 2
    event(log, logging.INFO, "viewer.started", url=f"http://{settings.host}:{settings.port}/",
          container=settings.container, auth="token" if token else "none (loopback)")
    web.run_app(app, host=settings.host, port=settings.port, print=None,
                access_log=None, handle_signals=True)
    return 0


def _export(args: argparse.Namespace) -> int:
    from viewer import export
    from viewer.catalog import Catalog
    from viewer.store import AzureStore, StoreError

    setup_logging("viewer", level=args.log_level)
    try:
        states = export.parse_states(args.state)
        settings = _settings(args)
    except ValueError as exc:
        sys.stderr.write(f"viewer export: {exc}\n")
        return 2
    problems = [p for p in settings.problems() if "connection string" in p]
    if problems:
        sys.stderr.write(f"viewer export: {problems[0]}\n")
        return 2

    async def run() -> export.ExportResult:
        store = AzureStore(settings)
        try:
            return await export.export(Catalog(store, 0), store, args.out, states,
                                       url_prefix=args.url_prefix, max_frames=args.max_frames)
        finally:
            await store.close()

    try:
        result = asyncio.run(run())
    except StoreError as exc:
        sys.stderr.write(f"viewer export: {exc}\n")
        return 1
    sys.stdout.write(f"{args.out / export.JSONL}: {result.images} images from {result.clips} "
                     f"clips ({result.skipped} skipped)\n")
    return 0


def configure(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the viewer's options and sub-commands (serve is the default) to ``parser``."""
    _storage_options(parser, suppress=False)
    _serve_options(parser, suppress=False)
    parser.set_defaults(func=_with_demo(_serve))
    commands = parser.add_subparsers(dest="viewer_command", metavar="COMMAND")
    serve = commands.add_parser(
        "serve", help="Serve the operator page (the default).",
        description="Serve the clip viewer page on --host:--port.")
    _storage_options(serve, suppress=True)
    _serve_options(serve, suppress=True)
    serve.set_defaults(func=_with_demo(_serve))
    out = commands.add_parser(
        "export", help="Write reviewed clips as an Azure ML AutoML JSONL training set.",
        description="Frames at the detection times of reviewed clips: confirmed ones with "
        "their boxes, false positives as negatives (no labels). Writes DIR/images/*.jpg and "
        "DIR/train.jsonl.")
    _storage_options(out, suppress=True)
    out.add_argument("--out", type=Path, required=True, metavar="DIR", help="Output folder.")
    out.add_argument("--state", default="confirmed,false_positive",
                     help="Review states to export, comma-separated (default "
                     "confirmed,false_positive; cleaned counts as labelled).")
    out.add_argument("--url-prefix", default="", help="Prepended to images/<file> in "
                     "image_url, e.g. azureml://datastores/<ds>/paths/<folder>/.")
    out.add_argument("--max-frames", type=int, default=10,
                     help="Frames per clip at most, spread over its detections (0: all).")
    out.set_defaults(func=_with_demo(_export))
    return parser


def add_parser(groups: argparse._SubParsersAction[argparse.ArgumentParser]
               ) -> argparse.ArgumentParser:
    """The ``viewer`` and ``clips`` sub-commands for ``graffiti-edge`` (``groups`` from
    add_subparsers)."""
    from viewer import terminal

    clips = groups.add_parser(
        "clips", help="List or download the clips in blob storage (the viewer, in a terminal).",
        description="List or download the clips in blob storage. The connection string comes "
        "from GRAFFITI_VIEWER_CONNECTION_STRING (else UPLOADER_UPLOAD__CONNECTION_STRING), or "
        "--demo reads the last demo run's.")
    terminal.configure(clips, lambda p: _storage_options(p, suppress=False), _terminal)
    return configure(groups.add_parser(
        "viewer", help="Operator clip viewer: list, play, review clips; export training sets.",
        description="Serve the operator clip viewer on the clips in Blob Storage (on IoT Edge "
        "or in the cloud), or export reviewed clips as a training set. The connection string "
        "comes from GRAFFITI_VIEWER_CONNECTION_STRING (else UPLOADER_UPLOAD__CONNECTION_STRING)."
    ))


def main(argv: list[str] | None = None) -> int:
    parser = configure(argparse.ArgumentParser(
        prog="python -m viewer", description="Operator clip viewer (see docs/viewer.md)."))
    args = parser.parse_args(argv)
    return int(args.func(args))
