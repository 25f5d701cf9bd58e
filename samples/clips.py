"""Clip sets as the camera module writes them: video and thumbnail first, sidecar renamed last.

The uploader's tests and its benchmark fill outboxes with these; the uploader never decodes a
video, so random bytes stand in for H.264 and a clip costs no encoding time.
"""

from __future__ import annotations

import hashlib
import os
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

from contracts.clip import ClipSidecar, clip_stem
from infra.durable import write_atomic

START = datetime(2026, 11, 21, 22, 15, 7, tzinfo=UTC)


def video_bytes(size: int, seed: int = 0) -> bytes:
    """Incompressible bytes standing in for H.264 (the uploader never decodes the video)."""
    return random.Random(seed).randbytes(size)


def write_clip(outbox: Path, event_id: str, video: bytes, *, part: int = 1,
               max_score: float = 0.9, start: datetime = START, thumbnail: bool = True,
               labels: tuple[str, ...] = ("graffiti",), mtime: float | None = None,
               carriage: str | None = None, position: str | None = None) -> ClipSidecar:
    """Write one clip set the way the camera does and return its sidecar (``carriage`` and
    ``position`` as a camera whose identity settings name them)."""
    outbox.mkdir(parents=True, exist_ok=True)
    stem = clip_stem(event_id, part)
    sidecar = ClipSidecar(
        event_id=event_id, part=part, device_id="edge-0001", train_id="train-0001",
        camera_id="cam-01", carriage=carriage, position=position, start_utc=start,
        end_utc=start + timedelta(seconds=12),
        trigger_utc=start + timedelta(seconds=5),
        video={"codec": "h264", "width": 1280, "height": 720, "fps": 25.0, "duration_s": 12.0,
               "bytes": len(video), "sha256": hashlib.sha256(video).hexdigest()},
        thumbnail=thumbnail, model={"name": "graffiti-demo", "version": "1.2.0"},
        thresholds={"min_score": 0.5, "confirm_mode": "n_of_m"},
        detections=[{"t_s": 5.0, "detections": [{"label": labels[0] if labels else "graffiti",
                                                  "class_id": 0, "score": max_score,
                                                  "box": [0.1, 0.2, 0.4, 0.6]}]}],
        max_score=max_score, labels=list(labels),
    )
    files = [outbox / f"{stem}.mp4"]
    files[0].write_bytes(video)
    if thumbnail:
        files.append(outbox / f"{stem}.jpg")
        files[-1].write_bytes(b"\xff\xd8\xff\xe0" + video_bytes(2000, seed=len(video)))
    files.append(outbox / f"{stem}.json")
    write_atomic(files[-1], sidecar.model_dump_json(indent=2))
    if mtime is not None:
        for path in files:
            os.utime(path, (mtime, mtime))
    return sidecar


def at(minute: int) -> datetime:
    """A clip start ``minute`` minutes after :data:`START` (distinct blob names)."""
    return START + timedelta(minutes=minute)
