"""A GStreamer RTSP server on 127.0.0.1 playing the camera in tests and the benchmark.

Run with Debian's ``/usr/bin/python3`` (PyGObject and the GStreamer RTSP server bindings come
from apt, not from the project's virtualenv), never imported by the test process itself:
:mod:`tests.support.rtsp` starts it as a child process.

Two kinds of media:

- ``--file X.mp4``: an H.264 MP4 served without re-encoding (``qtdemux ! h264parse !
  rtph264pay``), so the module receives exactly the keyframes and timestamps the test wrote;
  every client gets its own pipeline from the start of the file (not shared), which is how a
  restarted camera behaves too.
- ``--live WxH@FPS``: a live ``videotestsrc`` encoded by ``x264enc`` (1 s keyframe interval),
  endless, for the benchmark.

``config-interval=-1`` repeats SPS/PPS before every keyframe, as real cameras do, so a client
joining mid-stream can decode from the next keyframe.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def launch_line(args: argparse.Namespace) -> str:
    pay = "rtph264pay name=pay0 pt=96 config-interval=-1"
    if args.file:
        return f'( filesrc location="{args.file}" ! qtdemux ! h264parse ! {pay} )'
    size, fps = args.live.split("@")
    width, height = size.split("x")
    return (f"( videotestsrc is-live=true pattern={args.pattern} ! video/x-raw,width={width},"
            f"height={height},framerate={fps}/1,format=I420 ! x264enc tune=zerolatency "
            f"speed-preset={args.preset} bitrate={args.bitrate} key-int-max={fps} ! h264parse ! "
            f"{pay} )")


def _quit(loop: GLib.MainLoop) -> bool:
    loop.quit()
    return False


def _orphaned(loop: GLib.MainLoop, parent: int) -> bool:
    """Quit when the process that started us is gone (a test run killed by a timeout has
    no chance to stop its servers), so no server outlives its test run."""
    if os.getppid() != parent:
        loop.quit()
        return False
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mount", default="/camera")
    media = parser.add_mutually_exclusive_group(required=True)
    media.add_argument("--file", help="H.264 MP4 served as is")
    media.add_argument("--live", help="WIDTHxHEIGHT@FPS test pattern encoded live")
    parser.add_argument("--bitrate", type=int, default=4000, help="kbit/s for --live")
    parser.add_argument("--preset", default="ultrafast",
                        help="x264 speed preset for --live (superfast and slower use CABAC and "
                        "the deblocking filter, as cameras do, so decoding costs what it would)")
    parser.add_argument("--pattern", default="ball",
                        help="videotestsrc pattern for --live (snow: fills the bitrate the way "
                        "a detailed camera picture does)")
    args = parser.parse_args()

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch_line(args))
    factory.set_shared(bool(args.live))
    server.get_mount_points().add_factory(args.mount, factory)
    if server.attach(None) == 0:
        print(f"cannot listen on 127.0.0.1:{args.port}", file=sys.stderr)
        return 1
    loop = GLib.MainLoop()
    # Python signal handlers would not run while GLib blocks in C; GLib's own ones do.
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_HIGH, sig, _quit, loop)
    GLib.timeout_add_seconds(1, _orphaned, loop, os.getppid())
    print(f"serving rtsp://127.0.0.1:{args.port}{args.mount}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
