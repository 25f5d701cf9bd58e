"""What the demo prints while it runs: one line per thing that happened, read from the modules.

The modules in local mode write their output messages to JSON-lines files and their reported
properties to ``reported.json``; the narrator reads what is new since its last look and says
it in words, stamped with the video time, so a new user sees the stream come online, the
detections, the events, the clips written and the clips uploaded as they happen.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from contracts.messages import (
    ClipEvicted,
    ClipFailed,
    ClipIncomplete,
    ClipQuarantined,
    ClipUploaded,
    ClipWriteFailed,
    ClipWritten,
    DetectionsFound,
    DiskLow,
    EventStarted,
    Message,
    ModelActivated,
)
from contracts.outputs import Output
from local_run.outputs import typed
from local_run.pipeline import Pipeline

# (module, output) pairs the narrator follows, in the order they are read each time.
FOLLOWED = (("camera", Output.EVENTS), ("detector", Output.DETECTIONS),
            ("detector", Output.MODEL), ("uploader", Output.CLIPS), ("camera", Output.ALERTS),
            ("detector", Output.ALERTS), ("uploader", Output.ALERTS))


def _mb(size: float) -> str:
    return f"{size / 1e6:.1f} MB"


def describe(message: Message, min_score: float = 0.0) -> str | None:
    """One message in words (None for the ones not worth a line); ``min_score`` is the
    camera's threshold, so a detection it will not count is said to be below it."""
    match message:
        case EventStarted():
            return f"event started {message.event_id} (score {message.max_score or 0:.2f})"
        case ClipWritten():
            return (f"clip written {message.stem}.mp4 ({message.duration_s:.1f} s, "
                    f"{_mb(sum(message.files.values()))}, {message.trigger})")
        case ClipUploaded():
            video = next((b for b in message.blobs if b.name.endswith(".mp4")),
                         message.blobs[0])
            return f"uploaded {message.container}/{video.name} ({_mb(message.bytes)} in all)"
        case DetectionsFound() if message.detections:
            below = (f" (below the camera's trigger.min_score {min_score})"
                     if message.max_score < min_score else "")
            return (f"{len(message.detections)} detection(s), best "
                    f"{message.detections[0].label} {message.max_score:.2f}{below}")
        case ModelActivated():
            return f"model {message.name} {message.version} {message.status}"
    if message.OUTPUT is Output.ALERTS:
        return f"ALERT {message.TYPE}: {_alert(message)}"
    return None


def _alert(message: Message) -> str:
    """What an operator must look at, in a few words."""
    match message:
        case ClipWriteFailed():
            return message.error
        case ClipFailed() | ClipQuarantined():
            return message.reason
        case ClipEvicted():
            return f"{message.stem} deleted unsent, the outbox is over its quota"
        case ClipIncomplete():
            return f"{message.stem}: {len(message.files)} file(s) without a sidecar"
        case DiskLow():
            return f"{_mb(message.free_bytes)} free in {message.folder}"
    return message.TYPE


class Narrator:
    """Call :meth:`poll` now and then; it says what is new."""

    def __init__(self, pipeline: Pipeline, say: Callable[[str], None]) -> None:
        self.pipeline = pipeline
        self.say = say
        self._seen: dict[tuple[str, str], int] = {}
        self._stream: str | None = None

    def stamp(self) -> str:
        epoch = self.pipeline.epoch
        if epoch is None:
            return "     "
        elapsed = time.time() - epoch
        sign = "-" if elapsed < 0 else " "
        minutes, seconds = divmod(int(abs(elapsed)), 60)
        return f"{sign}{minutes:01d}:{seconds:02d}"

    def line(self, who: str, text: str) -> None:
        self.say(f"  {self.stamp()}  {who:<9} {text}")

    def poll(self) -> None:
        self._stream_status()
        min_score = float(self.pipeline.docs["camera"].get("trigger", {}).get("min_score", 0.0))
        for module, output in FOLLOWED:
            lines = self.pipeline.messages(module, output)
            start = self._seen.get((module, output), 0)
            self._seen[(module, output)] = len(lines)
            for sent in typed(lines[start:]):
                text = describe(sent.message, min_score)
                if text:
                    self.line(module, text)

    def _stream_status(self) -> None:
        stream = self.pipeline.reported("camera").get("stream", {}).get("camera", {})
        status = stream.get("status")
        if status and status != self._stream:
            self._stream = status
            size = (f" ({stream['width']}x{stream['height']} {stream.get('codec', '')})".rstrip()
                    if stream.get("width") else "")
            error = f": {stream['lastError']}" if status != "online" and stream.get(
                "lastError") else ""
            self.line("camera", f"stream {status} {self.pipeline.camera_url}{size}{error}")
