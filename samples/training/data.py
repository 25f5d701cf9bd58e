"""Training images rendered by the scene generator, letterboxed to the model input.

Stills come from the scene generator; video frames from the four video scenarios (moving
trains, tunnel light, platform distractors). Rendering is the slow part, so it runs in a
process pool with ordered results (the data set is identical whatever the pool size) and
can be cached as one .npz per configuration.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from samples.world.scene import Annotation, still
from samples.world.video import SCENARIOS, generate

log = logging.getLogger(__name__)

RENDER_WIDTH, RENDER_HEIGHT = 640, 360
INTERPOLATIONS = (cv2.INTER_AREA, cv2.INTER_LINEAR)
VIDEO_SCENARIOS = ("passing", "spraying", "clean", "tunnel")


@dataclass(frozen=True)
class Letterbox:
    """How input-pixel coordinates map back to the original image."""

    scale_x: float
    scale_y: float
    pad_x: float
    pad_y: float


def letterbox(
    image: np.ndarray,
    width: int,
    height: int,
    pad_value: int = 114,
    interpolation: int = cv2.INTER_LINEAR,
) -> tuple[np.ndarray, Letterbox]:
    """Resize keeping the aspect ratio and pad evenly on both sides (Ultralytics convention).

    The detector module's own letterbox (``detector_module.imaging.prepare``) is what the
    product runs; this one only adds a choice of interpolation for augmentation, and a test
    holds the two to the same pixels, so training cannot drift from inference.
    """
    h, w = image.shape[:2]
    scale = min(width / w, height / h)
    new_w, new_h = int(round(w * scale)), int(round(h * scale))
    resized = cv2.resize(image, (new_w, new_h), interpolation=interpolation)
    pad_x, pad_y = (width - new_w) / 2, (height - new_h) / 2
    top, left = int(round(pad_y - 0.1)), int(round(pad_x - 0.1))
    out = cv2.copyMakeBorder(
        resized,
        top,
        height - new_h - top,
        left,
        width - new_w - left,
        cv2.BORDER_CONSTANT,
        value=(pad_value, pad_value, pad_value),
    )
    return out, Letterbox(scale, scale, float(left), float(top))


@dataclass(frozen=True)
class Sample:
    """Letterboxed RGB image and its graffiti boxes in input pixels (x1, y1, x2, y2)."""

    image: np.ndarray
    boxes: np.ndarray


def _to_sample(image: np.ndarray, objects: list[Annotation], rng: np.random.Generator,
               width: int, height: int) -> Sample:
    """JPEG round trip (half the time, as a camera's compression), letterbox, boxes along."""
    if rng.random() < 0.5:
        quality = int(rng.integers(35, 95))
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if ok:
            image = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    boxed, geo = letterbox(
        image, width, height, interpolation=INTERPOLATIONS[int(rng.integers(len(INTERPOLATIONS)))]
    )
    boxes = np.array([o.box for o in objects], dtype=np.float32).reshape(-1, 4)
    boxes[:, [0, 2]] = boxes[:, [0, 2]] * geo.scale_x + geo.pad_x
    boxes[:, [1, 3]] = boxes[:, [1, 3]] * geo.scale_y + geo.pad_y
    return Sample(boxed, boxes)


def render_sample(seed: int, width: int, height: int) -> Sample:
    """One training still."""
    shot = still(seed, RENDER_WIDTH, RENDER_HEIGHT)
    return _to_sample(shot.image, shot.objects, np.random.default_rng([seed, 7]), width, height)


def render_video_samples(scenario: str, seed: int, width: int, height: int,
                         every: int) -> list[Sample]:
    """Every ``every``-th frame of one video scenario: the moving trains, tunnel light and
    platform distractors the stills do not show. Frames with paint the 25 % rule leaves
    unlabelled are skipped: it is graffiti, so it must not be learnt as background."""
    frames, truth = generate(scenario, seed, RENDER_WIDTH, RENDER_HEIGHT, every=every)
    rng = np.random.default_rng([seed, SCENARIOS.index(scenario), 7])
    out = []
    for k, image in enumerate(frames):
        index = k * every
        if not truth.unlabelled[index]:
            out.append(_to_sample(image, truth.frames[index], rng, width, height))
    return out


def _render(args: tuple[int, int, int]) -> list[Sample]:
    return [render_sample(*args)]


def _render_video(args: tuple[str, int, int, int, int]) -> list[Sample]:
    return render_video_samples(*args)


Dataset = tuple[np.ndarray, list[np.ndarray]]


def build(first_seed: int, count: int, width: int, height: int, workers: int = 2,
          cache_dir: Path | None = None) -> Dataset:
    """Images (N, H, W, 3) uint8 and per-image box arrays for seeds first_seed..+count."""
    cache = cache_dir / f"train-{width}x{height}-{first_seed}-{count}.npz" if cache_dir else None
    jobs = [(first_seed + i, width, height) for i in range(count)]
    return _build(cache, _render, jobs, workers, 32)


def build_video(first_seed: int, count: int, width: int, height: int, every: int,
                workers: int = 2, cache_dir: Path | None = None) -> Dataset:
    """Frames of every video scenario for video seeds first_seed..+count."""
    name = f"video-{width}x{height}-{first_seed}-{count}-{every}.npz"
    cache = cache_dir / name if cache_dir else None
    jobs = [(scenario, first_seed + i, width, height, every)
            for i in range(count) for scenario in VIDEO_SCENARIOS]
    return _build(cache, _render_video, jobs, workers, 1)


def _build(cache: Path | None, render: Callable[[Any], list[Sample]], jobs: list[Any],
           workers: int, chunksize: int) -> Dataset:
    """Render ``jobs`` in a pool, in order (the data set is the same whatever the pool), or
    load them from ``cache``."""
    if cache is not None and cache.exists():
        data = np.load(cache)
        splits = np.cumsum(data["counts"])[:-1]
        log.info("event=dataset_cached path=%s images=%d", cache, len(data["counts"]))
        return data["images"], list(np.split(data["boxes"], splits))
    started = time.monotonic()
    with get_context("spawn").Pool(workers) as pool:
        samples = [s for batch in pool.map(render, jobs, chunksize=chunksize) for s in batch]
    images = np.stack([s.image for s in samples])
    boxes = [s.boxes for s in samples]
    log.info(
        "event=dataset_rendered images=%d objects=%d seconds=%.1f",
        len(samples),
        sum(len(b) for b in boxes),
        time.monotonic() - started,
    )
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(
            cache,
            images=images,
            boxes=np.concatenate(boxes),
            counts=np.array([len(b) for b in boxes]),
        )
    return images, boxes
