"""A camera on 127.0.0.1: a real GStreamer RTSP server, for the demo, tests and benchmarks.

The server is :mod:`local_run.rtsp_camera_server` run by Debian's ``/usr/bin/python3`` (the
GStreamer bindings are apt packages, not wheels). ``stop()`` and ``start()`` keep the port, so
the camera can go away mid-run and come back where the module expects it, and a looped video
carries on at the picture of *now*, as a real camera's would.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from local_run.processes import ServerProcess, free_port, start_server

SYSTEM_PYTHON = "/usr/bin/python3"
SERVER_SCRIPT = Path(__file__).with_name("rtsp_camera_server.py")


@dataclass
class RtspServer(ServerProcess):
    """One RTSP server process playing ``file`` (an H.264 MP4, from its start for each
    client), ``loop`` (an H.264 MP4 as a live camera: looped on the wall clock from ``epoch``)
    or ``live`` ("1920x1080@25", a videotestsrc ``pattern`` encoded live)."""

    folder: Path
    file: Path | None = None
    loop: Path | None = None
    epoch: float | None = None
    live: str | None = None
    pattern: str = "ball"
    preset: str = "ultrafast"
    mount: str = "/camera"
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"rtsp://127.0.0.1:{self.port}{self.mount}"

    @property
    def log_file(self) -> Path:
        return self.folder / f"rtsp-{self.port}.log"

    def start(self, timeout_s: float = 15.0) -> RtspServer:
        if self.file:
            media = ["--file", str(self.file)]
        elif self.loop:
            media = ["--loop", str(self.loop)]
            media += [] if self.epoch is None else ["--epoch", repr(self.epoch)]
        else:
            media = ["--live", str(self.live), "--pattern", self.pattern, "--preset", self.preset]
        command = [SYSTEM_PYTHON, str(SERVER_SCRIPT), "--port", str(self.port), "--mount",
                   self.mount, *media]
        self.process = start_server(command, port=self.port, log_file=self.log_file,
                                    what="the RTSP server", timeout_s=timeout_s)
        return self

    def __enter__(self) -> RtspServer:
        return self.start() if self.process is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()
