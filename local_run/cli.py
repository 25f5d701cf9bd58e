"""``graffiti-edge up``, ``demo`` and ``simulate-camera``: the product on this machine.

The commands import :mod:`local_run.demo` only when they run, so ``graffiti-edge --help``
does not load the storage client and the pipeline.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from config.registry import MODULES
from infra.commands import Groups, command
from local_run.demo_video import DEMO_VIDEO
from local_run.supervisor import MODULE_ORDER


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


def _module_name(value: str) -> str:
    """argparse ``type`` for module names (``choices`` with ``nargs="*"`` rejects the default)."""
    if value not in MODULES:
        raise argparse.ArgumentTypeError(f"unknown module {value!r}; use {', '.join(MODULES)}")
    return value


def _folders(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config-dir", type=Path, default=Path("config"),
                        help="Folder with <module>.yaml twin files (default config).")
    parser.add_argument("--data-dir", type=Path, default=Path("data"),
                        help="Folder for module data and logs (default data).")


def add_parser(groups: Groups) -> None:
    """The ``up``, ``demo`` and ``simulate-camera`` commands for ``graffiti-edge``."""
    up = command(
        groups, "up", _up, help="Run the modules locally as processes until Ctrl-C.",
        description="The local stand-in for the IoT Edge runtime: start each module as its own "
        "process in local mode, with config/<module>.yaml as its twin (edit it to change "
        "settings live) and data/<module>/ for outputs and reported properties; stop them all "
        "on Ctrl-C or after --duration.",
    )
    up.add_argument("modules", nargs="*", type=_module_name, default=list(MODULE_ORDER),
                    metavar="MODULE",
                    help=f"Modules to run (default: {' '.join(MODULE_ORDER)}).")
    up.add_argument("--duration", type=float, help="Stop after this many seconds.")
    _folders(up)
    demo = command(
        groups, "demo", _demo,
        help="The sample video through the whole product, to clips in blob storage.",
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
    _folders(demo)
    _add_simulate_camera(groups)


def _add_simulate_camera(groups: Groups) -> None:
    camera = command(
        groups, "simulate-camera", _simulate_camera,
        help="Play a video as a live RTSP camera on 127.0.0.1 until Ctrl-C.",
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
