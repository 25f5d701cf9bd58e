"""Reviewed clips as a training set: frames with boxes in Azure ML AutoML JSONL.

Confirmed (and cleaned) clips give the frames at their detection times with the detected boxes
as labels; false positives give the same frames with no labels, which AutoML takes as
negative images, so the next model learns from exactly what the operators corrected. The JSONL
lines come from the sample world's own AutoML writer (``samples/world/annotations.py``), so both
exports are the same format.
"""

from __future__ import annotations

import asyncio
import json
import logging
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contracts.clip import VIDEO_SUFFIX, ClipSidecar, FrameDetections
from infra.logs import event
from viewer.catalog import REVIEW_STATES, Catalog, Filters
from viewer.store import Store
from viewer.summary import ClipSummary, read_sidecar

log = logging.getLogger(__name__)
EXPORT_STATES = REVIEW_STATES
DEFAULT_STATES = ("confirmed", "false_positive")
LABELLED = {"confirmed", "cleaned"}  # cleaned clips were real graffiti, since removed
JSONL = "train.jsonl"
IMAGES = "images"


@dataclass
class ExportResult:
    clips: int = 0
    images: int = 0
    skipped: int = 0


def parse_states(text: str) -> tuple[str, ...]:
    """``confirmed,false_positive`` -> the states, ValueError for an unknown one."""
    states = tuple(s.strip() for s in text.split(",") if s.strip())
    unknown = [s for s in states if s not in EXPORT_STATES]
    if unknown or not states:
        raise ValueError(f"states must be among {', '.join(EXPORT_STATES)}")
    return states


def pick_frames(frames: Iterable[FrameDetections], limit: int) -> list[FrameDetections]:
    """The frames with detections, at most ``limit`` spread evenly over the clip."""
    found = [f for f in frames if f.detections]
    if limit <= 0 or len(found) <= limit:
        return found
    step = len(found) / limit
    return [found[int(i * step)] for i in range(limit)]


def grab(video: Path, times: list[float]) -> dict[float, Any]:
    """RGB frames of ``video`` nearest to each time in seconds from its first frame."""
    import av  # decoding is only needed here; keep the server's import light

    wanted = sorted(set(times))
    found: dict[float, Any] = {}
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        half = 0.5 / float(stream.average_rate or 25)
        first: float | None = None
        for frame in container.decode(stream):
            if frame.time is None:
                continue
            first = frame.time if first is None else first
            t = frame.time - first
            while wanted and t >= wanted[0] - half:
                found[wanted.pop(0)] = frame.to_ndarray(format="rgb24")
            if not wanted:
                break
    return found


def _box(box: tuple[float, float, float, float]) -> list[float]:
    x1, y1, x2, y2 = (min(1.0, max(0.0, float(v))) for v in box)
    return [round(min(x1, x2), 6), round(min(y1, y2), 6), round(max(x1, x2), 6),
            round(max(y1, y2), 6)]


def clip_lines(clip: ClipSummary, sidecar: ClipSidecar, video: Path, out: Path,
               url_prefix: str, max_frames: int) -> list[dict[str, Any]]:
    """Write one clip's frames under ``out/images`` and return their AutoML lines."""
    import cv2

    from samples.world.annotations import automl_line

    chosen = pick_frames(sidecar.detections, max_frames)
    images = grab(video, [f.t_s for f in chosen])
    labelled = clip.review_state in LABELLED
    lines = []
    for frame in chosen:
        rgb = images.get(frame.t_s)
        if rgb is None:
            continue  # past the end of the video
        name = f"{str(clip.id).replace('/', '_')}_{int(round(frame.t_s * 1000)):07d}.jpg"
        ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                                [cv2.IMWRITE_JPEG_QUALITY, 92])
        if not ok:
            continue
        (out / IMAGES / name).write_bytes(jpeg.tobytes())
        height, width = rgb.shape[:2]
        objects = ([{"label": d.label, "box": _box(d.box)} for d in frame.detections]
                   if labelled else [])
        record = {"image": f"{IMAGES}/{name}", "width": width, "height": height,
                  "objects": objects}
        lines.append(automl_line(record, url_prefix))
    return lines


async def export(catalog: Catalog, store: Store, out: Path, states: Iterable[str],
                 url_prefix: str = "", max_frames: int = 10,
                 filters: Filters | None = None) -> ExportResult:
    """Write ``out/images/*.jpg`` and ``out/train.jsonl`` for the clips in ``states``."""
    wanted = set(states)
    (out / IMAGES).mkdir(parents=True, exist_ok=True)
    result = ExportResult()
    lines: list[dict[str, Any]] = []
    async for clip in catalog.all(filters or Filters(state="reviewed")):
        if clip.review_state not in wanted:
            continue
        sidecar, problem = await read_sidecar(store, clip.id)
        if sidecar is None:
            event(log, logging.WARNING, "export.sidecar_invalid", clip=str(clip.id),
                  reason=problem)
            result.skipped += 1
            continue
        video_bytes, _ = await store.read(clip.id.blob(VIDEO_SUFFIX))
        with tempfile.TemporaryDirectory() as tmp:
            video = Path(tmp) / "clip.mp4"
            video.write_bytes(video_bytes)
            try:
                found = await asyncio.to_thread(clip_lines, clip, sidecar, video, out,
                                                url_prefix, max_frames)
            except Exception as exc:  # noqa: BLE001 - one undecodable video must not stop it
                event(log, logging.WARNING, "export.video_unreadable", clip=str(clip.id),
                      error=type(exc).__name__)
                result.skipped += 1
                continue
        lines += found
        result.clips += 1
        result.images += len(found)
    (out / JSONL).write_text("".join(json.dumps(line) + "\n" for line in lines))
    event(log, logging.INFO, "export.done", out=str(out), clips=result.clips,
          images=result.images, skipped=result.skipped)
    return result
