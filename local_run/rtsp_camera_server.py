"""A GStreamer RTSP server on 127.0.0.1: the camera of the demo, the tests and the benchmarks.

Run with Debian's ``/usr/bin/python3`` (PyGObject and the GStreamer RTSP server bindings come
from apt, not from the project's virtualenv), never imported by the project's code:
:mod:`local_run.rtsp_camera` starts it as a child process.

Three kinds of media:

- ``--file X.mp4``: an H.264 MP4 served without re-encoding (``qtdemux ! h264parse !
  rtph264pay``), so the module receives exactly the keyframes and timestamps the test wrote;
  every client gets its own pipeline from the start of the file (not shared), which is how a
  restarted camera behaves too.
- ``--loop X.mp4 [--epoch T]``: the file as a live camera would show it: played in a loop
  against the wall clock (frame ``i`` goes out at ``T + k * duration + pts_i``), shared by all
  clients, not re-encoded. A client joining (or a server restarted) mid-pass gets the picture
  of *now* from the next keyframe, as from a real camera, so a test knows from the clock alone
  what was on screen. Before ``T`` the first frame is shown, frozen.
- ``--live WxH@FPS``: a live ``videotestsrc`` encoded by ``x264enc``, endless, for the
  benchmark. Keyframes come every second and only then (scene-cut detection off), as from a
  camera's encoder: with it on, the ``snow`` pattern is a scene cut in every frame and every
  frame an I-frame.

``config-interval=-1`` repeats SPS/PPS before every keyframe, as real cameras do, so a client
joining mid-stream can decode from the next keyframe.
"""

from __future__ import annotations

import argparse
import bisect
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

PAY = "rtph264pay name=pay0 pt=96 config-interval=-1"


@dataclass(frozen=True)
class Unit:
    """One H.264 access unit (a frame) of the file, with SPS/PPS before every keyframe."""

    pts_s: float
    data: bytes
    key: bool


def read_units(path: str) -> tuple[list[Unit], str, float]:
    """Every frame of an MP4's H.264 track in Annex B, its caps and the file's duration."""
    pipeline = Gst.parse_launch(
        f'filesrc location="{path}" ! qtdemux ! h264parse config-interval=-1 ! '
        "video/x-h264,stream-format=byte-stream,alignment=au ! appsink name=sink sync=false")
    sink = pipeline.get_by_name("sink")
    pipeline.set_state(Gst.State.PLAYING)
    units: list[Unit] = []
    caps = ""
    while (sample := sink.emit("pull-sample")) is not None:
        buf = sample.get_buffer()
        caps = caps or sample.get_caps().to_string()
        units.append(Unit(buf.pts / Gst.SECOND, buf.extract_dup(0, buf.get_size()),
                          not buf.has_flags(Gst.BufferFlags.DELTA_UNIT)))
    pipeline.set_state(Gst.State.NULL)
    if not units or not units[0].key:
        raise SystemExit(f"{path}: no H.264 frames, or the first is not a keyframe")
    frame_s = (units[-1].pts_s - units[0].pts_s) / max(1, len(units) - 1)
    return units, caps, units[-1].pts_s + frame_s


class LoopFeeder:
    """Pushes the file's frames into the shared media's ``appsrc`` on the wall clock."""

    def __init__(self, path: str, epoch: float) -> None:
        self.units, self.caps, self.duration = read_units(path)
        self.times = [u.pts_s for u in self.units]
        self.frame_s = self.duration / len(self.units)
        self.epoch = epoch
        self._src: Gst.Element | None = None
        self._need_key = True
        self._last: int | None = None
        self._lock = threading.Lock()

    def launch_line(self) -> str:
        # Leaky, so frames never pile up behind a slow client: a live camera drops, not lags.
        return (f'( appsrc name=src is-live=true format=time do-timestamp=true '
                f'max-bytes=4000000 leaky-type=downstream caps="{self.caps}" ! h264parse ! '
                f'{PAY} )')

    def attach(self, media: GstRtspServer.RTSPMedia) -> None:
        with self._lock:
            self._src = media.get_element().get_by_name("src")
            self._need_key = True
        media.connect("unprepared", self._detach)

    def _detach(self, _media: GstRtspServer.RTSPMedia) -> None:
        with self._lock:
            self._src = None

    def _due(self, now: float) -> int:
        """Index of the frame on screen at wall time ``now`` (frame 0 before the epoch)."""
        if now < self.epoch:
            return 0
        position = (now - self.epoch) % self.duration
        return max(0, bisect.bisect_right(self.times, position) - 1)

    def _push(self, index: int) -> None:
        unit = self.units[index]
        with self._lock:
            # Frames pushed before the client's PLAY would reach it late and stamped with a
            # stopped clock; a camera's picture starts when the client starts watching.
            if (self._src is None or self._src.current_state != Gst.State.PLAYING
                    or (self._need_key and not unit.key)):
                return
            self._need_key = False
            self._src.emit("push-buffer", Gst.Buffer.new_wrapped(unit.data))

    def run(self) -> None:
        while True:
            now = time.time()
            due = self._due(now)
            if now < self.epoch:
                self._push(0)
            elif self._last is None or due != self._last:
                start = due if self._last is None else (self._last + 1) % len(self.units)
                index = start
                while True:
                    self._push(index)
                    if index == due:
                        break
                    index = (index + 1) % len(self.units)
            self._last = None if now < self.epoch else due
            time.sleep(self.frame_s / 2)


def launch_line(args: argparse.Namespace) -> str:
    if args.file:
        return f'( filesrc location="{args.file}" ! qtdemux ! h264parse ! {PAY} )'
    size, fps = args.live.split("@")
    width, height = size.split("x")
    return (f"( videotestsrc is-live=true pattern={args.pattern} ! video/x-raw,width={width},"
            f"height={height},framerate={fps}/1,format=I420 ! x264enc tune=zerolatency "
            f"speed-preset={args.preset} bitrate={args.bitrate} key-int-max={fps} "
            f"option-string=scenecut=0 ! h264parse ! {PAY} )")


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
    media.add_argument("--file", help="H.264 MP4 served as is, from its start for each client")
    media.add_argument("--loop", help="H.264 MP4 played in a loop against the wall clock")
    parser.add_argument("--epoch", type=float, default=None,
                        help="Unix time at which --loop's first pass starts (default now)")
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
    if args.loop:
        feeder = LoopFeeder(args.loop, time.time() if args.epoch is None else args.epoch)
        factory.set_launch(feeder.launch_line())
        factory.connect("media-configure", lambda _f, media: feeder.attach(media))
        threading.Thread(target=feeder.run, name="feeder", daemon=True).start()
    else:
        factory.set_launch(launch_line(args))
    factory.set_shared(not args.file)
    server.get_mount_points().add_factory(args.mount, factory)
    if server.attach(None) == 0:
        sys.stderr.write(f"cannot listen on 127.0.0.1:{args.port}\n")
        return 1
    loop = GLib.MainLoop()
    # Python signal handlers would not run while GLib blocks in C; GLib's own ones do.
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_HIGH, sig, _quit, loop)
    GLib.timeout_add_seconds(1, _orphaned, loop, os.getppid())
    sys.stdout.write(f"serving rtsp://127.0.0.1:{args.port}{args.mount}\n")
    sys.stdout.flush()
    loop.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
