"""The demo video: rendered from the sample world's seed on first use, never committed."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from infra.durable import replace_durably, write_atomic
from infra.logs import setup_logging

if TYPE_CHECKING:
    import numpy as np

DEMO_VIDEO = Path("samples/generated/demo.mp4")
WIDTH, HEIGHT, FPS, SEED = 1280, 720, 25, 1


def truth_path(video: Path) -> Path:
    return video.with_suffix(".json")


def load_truth(video: Path) -> dict[str, Any]:
    return json.loads(truth_path(video).read_text())


def ensure_demo_video(video: Path = DEMO_VIDEO,
                      progress: Callable[[int, int], None] = lambda done, total: None) -> Path:
    """Render the demo scenario to ``video`` (and its ground truth beside it) if missing.

    The video is written to a temporary name and renamed last, durably (:mod:`infra.durable`),
    so an interrupted render or a power cut is never mistaken for a finished one.
    ``progress(frames_done, frames_total)`` is called now and then.
    """
    if video.exists() and truth_path(video).exists():
        return video
    from samples.world.encode import write_mp4
    from samples.world.video import DEMO_PARTS, SEGMENT_SECONDS, generate

    total = round(len(DEMO_PARTS) * SEGMENT_SECONDS * FPS)
    # The segments are drawn in parallel, one per core: the same frames, in about half the
    # time on two cores (the encoder here takes what the drawing leaves).
    workers = max(1, min(len(DEMO_PARTS), os.cpu_count() or 1))
    frames, truth = generate("demo", SEED, WIDTH, HEIGHT, FPS, workers=workers)

    def counted() -> Iterator[np.ndarray]:
        for index, frame in enumerate(frames):
            if index % FPS == 0:
                progress(index, total)
            yield frame
        progress(total, total)

    # PyAV picks the container from the suffix, so the temporary name keeps .mp4.
    tmp_video = video.with_name(f".{video.name}.tmp.mp4")
    write_mp4(tmp_video, counted(), WIDTH, HEIGHT, FPS, bframes=0)
    write_atomic(truth_path(video), json.dumps(truth.to_json()) + "\n")
    replace_durably(tmp_video, video)
    return video


if __name__ == "__main__":
    setup_logging("demo-video")
    ensure_demo_video()
