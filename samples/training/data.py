"""Training images rendered by the scene generator, letterboxed to the model input.

Rendering is the slow part, so it runs in a process pool with ordered results (the data set
is identical whatever the pool size) and can be cached as one .npz per configuration.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import cv2
import numpy as np

from samples.world.scene import still

log = logging.getLogger(__name__)

RENDER_WIDTH, RENDER_HEIGHT = 640, 360
INTERPOLATIONS = (cv2.INTER_AREA, cv2.INTER_LINEAR)


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


def render_sample(seed: int, width: int, height: int) -> Sample:
    """One training sample; JPEG round trips stand in for the camera's video compression."""
    shot = still(seed, RENDER_WIDTH, RENDER_HEIGHT)
    rng = np.random.default_rng([seed, 7])
    image = shot.image
    if rng.random() < 0.5:
        quality = int(rng.integers(35, 95))
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if ok:
            image = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    boxed, geo = letterbox(
        image, width, height, interpolation=INTERPOLATIONS[int(rng.integers(len(INTERPOLATIONS)))]
    )
    boxes = np.array([o.box for o in shot.objects], dtype=np.float32).reshape(-1, 4)
    boxes[:, [0, 2]] = boxes[:, [0, 2]] * geo.scale_x + geo.pad_x
    boxes[:, [1, 3]] = boxes[:, [1, 3]] * geo.scale_y + geo.pad_y
    return Sample(boxed, boxes)


def _render(args: tuple[int, int, int]) -> Sample:
    return render_sample(*args)


def build(
    first_seed: int,
    count: int,
    width: int,
    height: int,
    workers: int = 2,
    cache_dir: Path | None = None,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Images (N, H, W, 3) uint8 and per-image box arrays for seeds first_seed..+count."""
    cache = cache_dir / f"train-{width}x{height}-{first_seed}-{count}.npz" if cache_dir else None
    if cache is not None and cache.exists():
        data = np.load(cache)
        splits = np.cumsum(data["counts"])[:-1]
        log.info("event=dataset_cached path=%s images=%d", cache, count)
        return data["images"], list(np.split(data["boxes"], splits))
    started = time.monotonic()
    jobs = [(first_seed + i, width, height) for i in range(count)]
    with get_context("spawn").Pool(workers) as pool:
        samples = pool.map(_render, jobs, chunksize=32)
    images = np.stack([s.image for s in samples])
    boxes = [s.boxes for s in samples]
    log.info(
        "event=dataset_rendered images=%d objects=%d seconds=%.1f",
        count,
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
