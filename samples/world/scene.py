"""Composition: background + train strip + graffiti + lighting, and the boxes that result.

Randomness is split into independent streams (layout, train, background, graffiti,
lighting) so that rendering the same seed without graffiti changes only graffiti pixels;
the tests rely on that to prove every box sits on paint.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from samples.world import background, graffiti, lighting
from samples.world.carriage import TrainStrip, build_train, strip_height
from samples.world.paint import composite

ALPHA_ON = 0.05
MIN_VISIBLE = 0.25
LABEL = "graffiti"


@dataclass(frozen=True)
class Placement:
    """A graffiti spec pinned to a strip position (top-left of its patch) and carriage."""

    spec: graffiti.GraffitiSpec
    x: int
    y: int
    carriage: int
    appearance: int


@dataclass
class Mark:
    """Paint actually on the strip: coverage clipped to the carriage body, strip coords."""

    appearance: int
    kind: str
    x: int
    y: int
    alpha: np.ndarray

    @property
    def total(self) -> float:
        return float(self.alpha.sum())


@dataclass(frozen=True)
class Annotation:
    """A ground-truth object in frame pixels; ``visible`` is its in-frame paint fraction."""

    appearance: int
    kind: str
    box: tuple[float, float, float, float]
    visible: float

    def normalised(self, width: int, height: int) -> list[float]:
        x0, y0, x1, y1 = self.box
        return [
            round(x0 / width, 6),
            round(y0 / height, 6),
            round(x1 / width, 6),
            round(y1 / height, 6),
        ]


def paint(strip: TrainStrip, rgb: np.ndarray, placement: Placement, progress: float) -> Mark:
    """Spray ``placement`` onto ``rgb`` (a copy of the strip) and return the paint mask."""
    patch = graffiti.render(placement.spec, progress)
    bx0, by0, bx1, by1 = strip.bodies[placement.carriage]
    h, w = patch.alpha.shape
    alpha = patch.alpha.copy()
    ys = np.arange(placement.y, placement.y + h)[:, None]
    xs = np.arange(placement.x, placement.x + w)[None, :]
    alpha *= (ys >= by0) & (ys < by1) & (xs >= bx0) & (xs < bx1)
    composite(rgb, patch.rgb, alpha, placement.x, placement.y)
    return Mark(placement.appearance, placement.spec.kind, placement.x, placement.y, alpha)


def annotate(
    mark: Mark, origin_x: int, origin_y: int, width: int, height: int
) -> Annotation | None:
    """Box of the paint of ``mark`` that lands inside a width x height frame.

    ``origin`` is where strip pixel (0, 0) falls in the frame. Paint fainter than
    ``ALPHA_ON`` does not count, the same rule for every frame and image.
    """
    fx, fy = mark.x + origin_x, mark.y + origin_y
    h, w = mark.alpha.shape
    cx0, cy0 = max(0, -fx), max(0, -fy)
    cx1, cy1 = min(w, width - fx), min(h, height - fy)
    if cx0 >= cx1 or cy0 >= cy1 or mark.total <= 0:
        return None
    inside = mark.alpha[cy0:cy1, cx0:cx1]
    on = inside > ALPHA_ON
    cols, rows = np.flatnonzero(on.any(axis=0)), np.flatnonzero(on.any(axis=1))
    if len(cols) == 0:
        return None
    box = (
        float(fx + cx0 + cols[0]),
        float(fy + cy0 + rows[0]),
        float(fx + cx0 + cols[-1] + 1),
        float(fy + cy0 + rows[-1] + 1),
    )
    return Annotation(mark.appearance, mark.kind, box, float(inside.sum()) / mark.total)


def frame(
    bg: np.ndarray, strip_rgb: np.ndarray, strip: TrainStrip, origin_x: int, origin_y: int
) -> np.ndarray:
    """Background with the strip laid over it; float32, before lighting."""
    out = bg.copy()
    width = out.shape[1]
    c0, c1 = max(0, -origin_x), min(strip.width, width - origin_x)
    if c0 < c1:
        composite(out, strip_rgb[:, c0:c1], strip.alpha[:, c0:c1], origin_x + c0, origin_y)
    return out


@dataclass(frozen=True)
class Still:
    """A rendered still image (uint8 RGB) and its ground truth."""

    image: np.ndarray
    objects: list[Annotation]
    seed: int
    background: str


def streams(seed: int, count: int, salt: int = 0) -> list[np.random.Generator]:
    """Independent generators per concern, all from one seed (``salt`` tells uses apart)."""
    sequence = np.random.SeedSequence([seed, salt])
    return [np.random.default_rng(s) for s in sequence.spawn(count)]


def place_graffiti(
    rng: np.random.Generator,
    strip: TrainStrip,
    window: tuple[int, int],
    count: int,
    first_id: int = 0,
    kinds: tuple[str, ...] | None = None,
) -> list[Placement]:
    """Put ``count`` graffiti on carriage bodies overlapping the strip columns ``window``.

    Some are pushed against the window edge so they are cut by the frame, as on a camera.
    """
    out: list[Placement] = []
    taken: list[tuple[float, float, float, float]] = []
    for _ in range(count * 6):
        if len(out) == count:
            break
        kind = kinds[len(out) % len(kinds)] if kinds else None
        spec = graffiti.random_spec(rng, strip.body_height, strip.body_colours[0], kind)
        patch = graffiti.render(spec)
        h, w = patch.alpha.shape
        centre = rng.uniform(window[0] - 0.3 * w, window[1] + 0.3 * w)
        carriage = next((i for i, b in enumerate(strip.bodies) if b[0] <= centre < b[2]), None)
        if carriage is None:
            continue
        bx0, by0, bx1, by1 = strip.bodies[carriage]
        x = int(np.clip(centre - w / 2, bx0 - 0.2 * w, bx1 - 0.8 * w))
        y = int(rng.uniform(by0 - 0.1 * h, max(by0, by1 - 0.9 * h)))
        box = (x, y, x + w, y + h)
        if any(_overlap(box, t) > 0.15 for t in taken):
            continue
        out.append(Placement(spec, x, y, carriage, first_id + len(out)))
        taken.append(box)
    return out


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return ix * iy / max(smaller, 1.0)


def still(
    seed: int,
    width: int = 1280,
    height: int = 720,
    with_graffiti: bool = True,
    graffiti_count: int | None = None,
) -> Still:
    """One still camera image from ``seed``; ``with_graffiti=False`` renders the same scene clean.

    ``graffiti_count`` forces the number of graffiti (0 for a distractor-only image). One in
    five graffiti is only partly sprayed, so the model also learns the first strokes of a tag.
    """
    layout, train_rng, bg_rng, graf_rng, light_rng = streams(seed, 5)
    body = int(height * layout.uniform(0.4, 0.68))
    rail_y = int(height * layout.uniform(0.8, 0.97))
    origin_y = rail_y - strip_height(body)
    strip = build_train(train_rng, body, 2, float(layout.uniform(0.0, 1.0)))
    origin_x = -int(layout.uniform(-0.25 * width, strip.width - 0.75 * width))
    kind = background.KINDS[int(layout.integers(len(background.KINDS)))]
    bg = background.render(bg_rng, kind, width, height, rail_y)
    count = graffiti_count
    if count is None:
        count = int(layout.choice(5, p=[0.22, 0.33, 0.25, 0.12, 0.08]))
    window = (-origin_x, -origin_x + width)
    placements = place_graffiti(graf_rng, strip, window, count)
    rgb = strip.rgb.copy()
    objects = []
    for placement in placements:
        progress = 1.0 if graf_rng.random() < 0.8 else float(graf_rng.uniform(0.1, 1.0))
        trial = strip.rgb[:1, :1].copy()
        mark = paint(strip, trial, placement, progress)
        ann = annotate(mark, origin_x, origin_y, width, height)
        if ann is not None and ann.visible >= MIN_VISIBLE:
            paint(strip, rgb, placement, progress)
            objects.append(ann)
    scene = frame(bg, rgb if with_graffiti else strip.rgb, strip, origin_x, origin_y)
    light = lighting.random_lighting(light_rng)
    noise = light_rng.standard_normal((height, width), dtype=np.float32)
    image = lighting.apply(scene, light, noise)
    return Still(image, objects if with_graffiti else [], seed, kind)
