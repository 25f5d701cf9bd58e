"""What the demo prints while it runs: one line per thing that happened, read from the modules.

The modules in local mode write their output messages to JSON-lines files and their reported
properties to ``reported.json``; the narrator reads what is new since its last look and says
it in words, stamped with the video time, so a new user sees the stream come online, the
detections, the events, the clips written and the clips uploaded as they happen.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from local_run.pipeline import Pipeline

# (module, output) pairs the narrator follows, in the order they are read each time.
FOLLOWED = (("camera", "events"), ("detector", "detections"), ("detector", "model"),
            ("uploader", "clips"), ("camera", "alerts"), ("detector", "alerts"),
            ("uploader", "alerts"))


def _mb(size: float) -> str:
    return f"{size / 1e6:.1f} MB"


def describe(output: str, message: dict[str, Any], min_score: float = 0.0) -> str | None:
    """One message in words (None for the ones not worth a line); ``min_score`` is the
    camera's threshold, so a detection it will not count is said to be below it."""
    kind, body = message["type"], message["body"]
    if output == "alerts":
        reason = body.get("error") or body.get("reason") or body.get("alert")
        return f"ALERT {kind}: {reason}"
    if kind == "event_started":
        return f"event started {body['eventId']} (score {body.get('maxScore') or 0:.2f})"
    if kind == "clip_written":
        size = sum(body.get("files", {}).values())
        return (f"clip written {body['stem']}.mp4 ({body['durationS']:.1f} s, {_mb(size)}, "
                f"{body['trigger']})")
    if kind == "clip_uploaded":
        video = next((b for b in body["blobs"] if b["name"].endswith(".mp4")), body["blobs"][0])
        return f"uploaded {body['container']}/{video['name']} ({_mb(body['bytes'])} in all)"
    if output == "detections" and body.get("detections"):
        found = body["detections"]
        below = (f" (below the camera's trigger.min_score {min_score})"
                 if body["maxScore"] < min_score else "")
        return (f"{len(found)} detection(s), best {found[0]['label']} "
                f"{body['maxScore']:.2f}{below}")
    if output == "model":
        return f"model {body.get('name')} {body.get('version')} active"
    return None


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
            messages = self.pipeline.messages(module, output)
            start = self._seen.get((module, output), 0)
            self._seen[(module, output)] = len(messages)
            for message in messages[start:]:
                text = describe(output, message, min_score)
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
