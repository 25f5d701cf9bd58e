"""``graffiti-edge``: the umbrella command for local use.

Sub-command groups live with the code they drive; this file only wires them together.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from cli.deployment import PLATFORMS
from config.check import check_file
from config.registry import MODULES, module_spec
from infra.logs import setup_logging
from local_run.demo_video import DEMO_VIDEO
from viewer.cli import add_parser as add_viewer_parser


def _config_check(args: argparse.Namespace) -> int:
    errors = sorted(check_file(args.file, args.module), key=lambda e: (e.line or 0, e.path))
    for err in errors:
        sys.stdout.write(f"{err}\n")
    if errors:
        sys.stdout.write(f"{args.file}: {len(errors)} error(s) for the {args.module} module\n")
        return 1
    sys.stdout.write(f"{args.file}: valid settings for the {args.module} module\n")
    return 0


def _config_schema(args: argparse.Namespace) -> int:
    spec = module_spec(args.module)
    schema = spec.settings.model_json_schema()
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema,
              "title": f"graffiti-edge {spec.name} module settings"}
    sys.stdout.write(json.dumps(schema, indent=2) + "\n")
    return 0


def _config_docs(args: argparse.Namespace) -> int:
    from config.reference import replace_reference, settings_reference

    if args.write is None:
        sys.stdout.write(settings_reference() + "\n")
        return 0
    args.write.write_text(replace_reference(args.write.read_text()))
    return 0


def _up(args: argparse.Namespace) -> int:
    from local_run.demo import run_up

    return run_up(args.modules, config_dir=args.config_dir, data_root=args.data_dir,
                  duration_s=args.duration)


def _demo(args: argparse.Namespace) -> int:
    from local_run.demo import DemoOptions, run_demo

    return run_demo(DemoOptions(config_dir=args.config_dir, data_root=args.data_dir,
                                video=args.video, duration_s=args.duration))


def _simulate_camera(args: argparse.Namespace) -> int:
    from local_run.demo import simulate_camera

    return simulate_camera(args.video, port=args.port, mount=args.mount,
                           folder=args.data_dir / "camera")


def _samples(args: argparse.Namespace) -> int:
    from samples.cli import main as samples_main

    return samples_main(args.args)


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


def _deploy_genconfig(args: argparse.Namespace) -> int:
    from cli.deployment import DeploymentError, generate_file

    try:
        manifest = generate_file(args.template, env_file=args.env, platform=args.platform,
                                 refuse_placeholders=not args.allow_placeholders)
    except (DeploymentError, OSError, ValueError) as exc:
        sys.stderr.write(f"genconfig: {exc}\n")
        return 1
    output = args.output or Path("build") / f"deployment.{args.platform}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    output.chmod(0o600)  # it holds the registry password and storage keys
    sys.stdout.write(f"{output}: deployment manifest for {args.platform} (holds secrets; do "
                     "not commit it)\n")
    return 0


def _module_name(value: str) -> str:
    """argparse ``type`` for module names (``choices`` with ``nargs="*"`` rejects the default)."""
    if value not in MODULES:
        raise argparse.ArgumentTypeError(f"unknown module {value!r}; use {', '.join(MODULES)}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="graffiti-edge",
        description="Local tools for the graffiti detection modules: check settings files, "
        "print their JSON Schema, call a running module's direct methods.",
    )
    groups = parser.add_subparsers(dest="group", required=True, metavar="COMMAND")

    config = groups.add_parser("config", help="Check settings files and print their schema.",
                               description="Check settings files and print their schema.")
    config_cmds = config.add_subparsers(dest="command", required=True, metavar="COMMAND")
    check = config_cmds.add_parser(
        "check", help="Validate a YAML settings file; exit 1 naming every error.",
        description="Validate a YAML settings (or local twin) file against a module's settings "
        "model. Prints every error with file, line, field path and reason; exits 1 if any.",
    )
    check.add_argument("file", type=Path, help="YAML file to check.")
    check.add_argument("--module", required=True, choices=sorted(MODULES))
    check.set_defaults(func=_config_check)
    schema = config_cmds.add_parser(
        "schema", help="Print a module's settings as JSON Schema.",
        description="Print the JSON Schema of a module's settings (for editor completion, "
        "e.g. the YAML language server's `# yaml-language-server: $schema=` comment).",
    )
    schema.add_argument("--module", required=True, choices=sorted(MODULES))
    schema.set_defaults(func=_config_schema)

    docs = config_cmds.add_parser(
        "docs", help="Print (or rewrite in a Markdown file) the settings reference.",
        description="Print the settings reference generated from the models, or replace the "
        "generated section of a Markdown file with it (--write docs/configuration.md).",
    )
    docs.add_argument("--write", type=Path, metavar="FILE", help="Markdown file to update.")
    docs.set_defaults(func=_config_docs)

    module_names = ["detector", "uploader", "camera"]
    up = groups.add_parser(
        "up", help="Run the modules locally as processes until Ctrl-C.",
        description="The local stand-in for the IoT Edge runtime: start each module as its own "
        "process in local mode, with config/<module>.yaml as its twin (edit it to change "
        "settings live) and data/<module>/ for outputs and reported properties; stop them all "
        "on Ctrl-C or after --duration.",
    )
    up.add_argument("modules", nargs="*", type=_module_name, default=module_names,
                    metavar="MODULE", help=f"Modules to run (default: {' '.join(module_names)}).")
    up.add_argument("--duration", type=float, help="Stop after this many seconds.")
    demo = groups.add_parser(
        "demo", help="The sample video through the whole product, to clips in blob storage.",
        description="Run everything on this machine: Azurite as Blob Storage on IoT Edge, a "
        "simulated RTSP camera playing the sample video in a loop (rendered on first use), and "
        "the three modules as processes with config/<module>.yaml as their twins. Shows a live "
        "settings change, then the stream, detections, events, clips written and uploaded; "
        "stops after one pass of the video (or Ctrl-C) and prints a summary. Point "
        "stream.detect_url in config/camera.yaml at a real camera to watch it instead.",
    )
    demo.add_argument("--video", type=Path, default=DEMO_VIDEO,
                      help=f"Video the simulated camera plays (default {DEMO_VIDEO}, rendered "
                      "if missing).")
    demo.add_argument("--duration", type=float,
                      help="Seconds to watch (default one pass of the video).")
    for sub in (up, demo):
        sub.add_argument("--config-dir", type=Path, default=Path("config"),
                         help="Folder with <module>.yaml twin files (default config).")
        sub.add_argument("--data-dir", type=Path, default=Path("data"),
                         help="Folder for module data and logs (default data).")
    up.set_defaults(func=_up)
    demo.set_defaults(func=_demo)

    camera = groups.add_parser(
        "simulate-camera", help="Play a video as a live RTSP camera on 127.0.0.1 until Ctrl-C.",
        description="Serve an H.264 MP4 over RTSP as a live camera would: looped on the wall "
        "clock, shared by all clients, not re-encoded (Debian's GStreamer RTSP server; `make "
        "demo` installs it). Then `graffiti-edge up` runs the modules against it.",
    )
    camera.add_argument("--video", type=Path, default=DEMO_VIDEO,
                        help=f"H.264 MP4 without B-frames (default {DEMO_VIDEO}, rendered if "
                        "missing).")
    camera.add_argument("--port", type=int, default=8554, help="RTSP port (default 8554).")
    camera.add_argument("--mount", default="/camera", help="Path (default /camera).")
    camera.add_argument("--data-dir", type=Path, default=Path("data"),
                        help="Folder for the server's log (default data).")
    camera.set_defaults(func=_simulate_camera)

    samples = groups.add_parser(
        "samples", add_help=False, prefix_chars="\0",
        help="The sample world: synthetic scenes, videos, the demonstration model "
        "(`graffiti-edge samples --help`).",
    )
    samples.add_argument("args", nargs=argparse.REMAINDER)
    samples.set_defaults(func=_samples)

    method = groups.add_parser(
        "method", help="Call a direct method on a module running locally.",
        description="Call a direct method on a module running in local mode (the stand-in for "
        "IoT Hub's direct methods), e.g. `graffiti-edge method --module camera ping`.",
    )
    method.add_argument("name", help="Method name, e.g. ping.")
    method.add_argument("--module", required=True, choices=sorted(MODULES))
    method.add_argument("--payload", help="JSON payload.")
    method.add_argument("--data-dir", type=Path,
                        help="The module's --data-dir (default data/<module>).")
    method.add_argument("--timeout", type=float, default=30.0, help="Seconds to wait.")
    method.set_defaults(func=_method)

    deploy = groups.add_parser("deploy", help="Build IoT Edge deployment manifests.",
                               description="Build IoT Edge deployment manifests.")
    deploy_cmds = deploy.add_subparsers(dest="command", required=True, metavar="COMMAND")
    genconfig = deploy_cmds.add_parser(
        "genconfig", help="Expand deployment.template.json into a deployment manifest.",
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
    genconfig.set_defaults(func=_deploy_genconfig)

    add_viewer_parser(groups)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging("cli", level=logging.getLevelName(logging.WARNING))
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
