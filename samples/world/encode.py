"""H.264 MP4 writing with PyAV: the one road to browser-playable video on this stack.

OpenCV's wheel cannot write H.264, so frames go through libx264 (yuv420p, Main profile,
fixed keyframe interval, faststart) exactly as a camera clip would be stored.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

import av
import numpy as np

from infra.logs import event

log = logging.getLogger(__name__)


def write_mp4(
    path: Path,
    frames: Iterable[np.ndarray],
    width: int,
    height: int,
    fps: int,
    keyframe_seconds: float = 2.0,
    preset: str = "veryfast",
    crf: int = 23,
    bframes: int | None = None,
) -> int:
    """Encode RGB uint8 frames to ``path``; returns the number of frames written.

    ``bframes=0`` makes the stream a camera's: frames in display order, so it can be replayed
    live over RTSP frame by frame (None keeps the preset's B-frames).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    keyint = max(1, int(round(keyframe_seconds * fps)))
    x264 = f"keyint={keyint}:min-keyint={keyint}:scenecut=0"
    if bframes is not None:
        x264 += f":bframes={bframes}"
    count = 0
    with av.open(str(path), mode="w", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        stream.options = {
            "preset": preset,
            "crf": str(crf),
            "profile": "main",
            "x264-params": x264,
        }
        for image in frames:
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            frame.pts = count
            container.mux(stream.encode(frame))
            count += 1
        container.mux(stream.encode(None))
    event(log, logging.INFO, "video.written", path=path, frames=count, fps=fps, keyint=keyint)
    return count


def decoded_frames(path: Path, every: int = 1) -> Iterator[tuple[int, av.VideoFrame]]:
    """Decode ``path`` to (index, decoded frame) pairs, keeping every ``every``-th frame: the
    frames a camera module sampling the stream would see."""
    with av.open(str(path)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index % every == 0:
                yield index, frame


def read_frames(path: Path, every: int = 1) -> Iterable[tuple[int, np.ndarray]]:
    """Decode ``path`` to (index, RGB uint8) pairs, keeping every ``every``-th frame."""
    for index, frame in decoded_frames(path, every):
        yield index, frame.to_ndarray(format="rgb24")
