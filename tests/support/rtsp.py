"""Videos for the camera tests (the RTSP server itself is :mod:`local_run.rtsp_camera`).

:func:`write_marker_video` writes a small H.264 MP4 whose "graffiti" is a solid colour square
shown over known time spans, so a test (and a fake detector that looks for the colour) knows
exactly when a tag is visible without a trained model.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from local_run.fake_detector import red_mask
from samples.world.encode import write_mp4

MARKER_RGB = (230, 20, 30)
Box = tuple[float, float, float, float]
RIGHT_BOX: Box = (0.6, 0.3, 0.8, 0.6)
LEFT_BOX: Box = (0.1, 0.3, 0.3, 0.6)


def write_marker_video(path: Path, seconds: float,
                       spans: Sequence[tuple[float, float] | tuple[float, float, Box]], *,
                       width: int = 640, height: int = 360, fps: int = 25,
                       keyframe_s: float = 1.0) -> Path:
    """An H.264 MP4 of a moving grey texture with a red square visible during each
    ``(start_s, end_s[, box])`` span (box normalised, :data:`RIGHT_BOX` by default).
    Keyframes every ``keyframe_s``, no B-frames, like a camera's low-latency stream."""
    rng = np.random.default_rng(7)
    texture = rng.integers(60, 160, size=(height, width * 2, 3), dtype=np.uint8)
    marks = [(span[0], span[1], span[2] if len(span) == 3 else RIGHT_BOX) for span in spans]

    def frames() -> Iterator[np.ndarray]:
        for index in range(round(seconds * fps)):
            t = index / fps
            shift = (index * 4) % width
            image = np.ascontiguousarray(texture[:, shift:shift + width])
            for start, end, (x1, y1, x2, y2) in marks:
                if start <= t < end:
                    image[round(y1 * height):round(y2 * height),
                          round(x1 * width):round(x2 * width)] = MARKER_RGB
            yield image

    write_mp4(path, frames(), width, height, fps, keyframe_seconds=keyframe_s,
              preset="ultrafast", crf=28, bframes=0)
    return path


def marker_visible(image: np.ndarray) -> bool:
    """Whether an RGB frame shows the marker square (a few hundred strongly red pixels)."""
    return int(np.count_nonzero(red_mask(image))) > 200



