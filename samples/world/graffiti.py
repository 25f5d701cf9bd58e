"""Graffiti shapes: tags, bubble-letter pieces, scratched marks and sprayed blobs.

Each piece of graffiti is rendered from its own seed into a small RGBA patch, so a video can
re-render it at any spraying progress (0..1) and get exactly the strokes of the final tag,
just fewer of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from samples.world.paint import rotate_patch, soften
from samples.world.palette import GRAFFITI, pick_contrasting

KINDS: tuple[str, ...] = ("tag", "piece", "scratch", "blob")


@dataclass(frozen=True)
class GraffitiSpec:
    """Everything needed to redraw one piece of graffiti identically."""

    kind: str
    seed: int
    height: float
    letters: int
    angle: float
    thickness: float
    colours: tuple[tuple[float, float, float], ...]
    outline: bool
    drips: int


@dataclass(frozen=True)
class Patch:
    """Rendered graffiti: colour and paint coverage (0..1) of the same shape."""

    rgb: np.ndarray
    alpha: np.ndarray


def _catmull_rom(points: np.ndarray, samples_per_segment: int = 10) -> np.ndarray:
    """Smooth curve through the control points: hand-drawn strokes are never polygons."""
    padded = np.vstack([points[:1], points, points[-1:]])
    t = np.linspace(0.0, 1.0, samples_per_segment, endpoint=False, dtype=np.float32)[:, None]
    t2, t3 = t * t, t * t * t
    out = []
    for i in range(1, len(padded) - 2):
        p0, p1, p2, p3 = padded[i - 1], padded[i], padded[i + 1], padded[i + 2]
        out.append(
            0.5
            * (
                2 * p1
                + (-p0 + p2) * t
                + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t2
                + (-p0 + 3 * p1 - 3 * p2 + p3) * t3
            )
        )
    out.append(points[-1:])
    return np.vstack(out).astype(np.float32)


def _letter_strokes(
    rng: np.random.Generator, letters: int, height: float, angular: bool
) -> list[np.ndarray]:
    """Random pseudo-letters: tags are unreadable on purpose, only their style matters."""
    cell = height * rng.uniform(0.5, 0.8)
    slant = rng.uniform(-0.35, 0.45)
    strokes: list[np.ndarray] = []
    for i in range(letters):
        x0 = i * cell
        for _ in range(int(rng.integers(1, 4))):
            n = int(rng.integers(2, 4)) if angular else int(rng.integers(3, 6))
            pts = np.column_stack(
                [
                    x0 + rng.uniform(-0.1, 1.15, n) * cell,
                    rng.uniform(0.0, 1.0, n) * height * rng.uniform(0.8, 1.1),
                ]
            ).astype(np.float32)
            curve = pts if angular else _catmull_rom(pts)
            strokes.append(curve)
    if not angular and rng.random() < 0.45:
        xs = np.linspace(-0.1, letters * 1.05, 5, dtype=np.float32) * cell
        ys = height * (1.05 + rng.uniform(-0.1, 0.15, 5))
        strokes.append(_catmull_rom(np.column_stack([xs, ys]).astype(np.float32)))
    for stroke in strokes:
        stroke[:, 0] += (height - stroke[:, 1]) * slant
    return strokes


def _drip_strokes(
    rng: np.random.Generator, strokes: list[np.ndarray], count: int, height: float
) -> list[np.ndarray]:
    """Paint runs hanging from the lowest points of the strokes."""
    drips = []
    for _ in range(count):
        stroke = strokes[int(rng.integers(len(strokes)))]
        x, y = stroke[int(rng.integers(len(stroke)))]
        length = height * rng.uniform(0.12, 0.5)
        ys = np.linspace(y, y + length, 6, dtype=np.float32)
        xs = x + np.cumsum(rng.normal(0.0, 0.01 * height, 6)).astype(np.float32)
        drips.append(np.column_stack([xs, ys]).astype(np.float32))
    return drips


def _polyline_length(points: np.ndarray) -> float:
    return float(np.linalg.norm(np.diff(points, axis=0), axis=1).sum()) if len(points) > 1 else 0.0


def _truncate(strokes: list[np.ndarray], progress: float) -> list[np.ndarray]:
    """The strokes a sprayer has finished after ``progress`` of the total path length."""
    if progress >= 1.0:
        return strokes
    lengths = [_polyline_length(s) for s in strokes]
    budget = progress * sum(lengths)
    out = []
    for stroke, length in zip(strokes, lengths, strict=True):
        if budget <= 0:
            break
        if budget >= length:
            out.append(stroke)
        else:
            seg = np.linalg.norm(np.diff(stroke, axis=0), axis=1)
            keep = int(np.searchsorted(np.cumsum(seg), budget)) + 1
            out.append(stroke[: max(keep, 2)])
        budget -= length
    return out


def _draw(
    shape: tuple[int, int], strokes: list[np.ndarray], offset: np.ndarray, thickness: float
) -> np.ndarray:
    """Rasterise polylines into a 0..1 float mask (anti-aliased, 4 bits sub-pixel)."""
    mask = np.zeros(shape, dtype=np.uint8)
    width = max(1, int(round(thickness)))
    for stroke in strokes:
        pts = np.round((stroke + offset) * 16).astype(np.int32)
        cv2.polylines(mask, [pts], False, 255, width, cv2.LINE_AA, shift=4)
    return mask.astype(np.float32) / 255.0


def _canvas(strokes: list[np.ndarray], margin: float) -> tuple[tuple[int, int], np.ndarray]:
    allpts = np.vstack(strokes)
    lo, hi = allpts.min(axis=0) - margin, allpts.max(axis=0) + margin
    size = np.ceil(hi - lo).astype(int) + 1
    return (int(size[1]), int(size[0])), -lo


def _layers(masks: list[np.ndarray], colours: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Stack paint layers bottom-up into one RGB patch and coverage."""
    rgb = np.zeros((*masks[0].shape, 3), dtype=np.float32)
    alpha = np.zeros(masks[0].shape, dtype=np.float32)
    for mask, col in zip(masks, colours, strict=True):
        rgb += (col[None, None, :] - rgb) * mask[..., None]
        alpha = np.maximum(alpha, mask)
    return rgb, alpha


def _tag(spec: GraffitiSpec, rng: np.random.Generator, progress: float) -> Patch:
    strokes = _letter_strokes(rng, spec.letters, spec.height, angular=False)
    strokes += _drip_strokes(rng, strokes, spec.drips, spec.height)
    outline_w = spec.thickness * 0.6 if spec.outline else 0.0
    shape, offset = _canvas(strokes, spec.thickness * 2 + outline_w + 4)
    drawn = _truncate(strokes, progress)
    sigma = 0.12 * spec.thickness + 0.3
    main = soften(_draw(shape, drawn, offset, spec.thickness), sigma)
    cols = [np.asarray(c, dtype=np.float32) for c in spec.colours]
    if spec.outline:
        under = soften(_draw(shape, drawn, offset, spec.thickness + 2 * outline_w), sigma)
        return Patch(*_layers([under, main], [cols[1], cols[0]]))
    return Patch(*_layers([main], [cols[0]]))


def _piece(spec: GraffitiSpec, rng: np.random.Generator, progress: float) -> Patch:
    strokes = _letter_strokes(rng, spec.letters, spec.height, angular=bool(rng.random() < 0.4))
    fat = spec.height * 0.32
    outline_w = max(2.0, spec.height * 0.06)
    shadow = np.array([1.0, 1.0], dtype=np.float32) * spec.height * 0.08
    shape, offset = _canvas(strokes, fat + outline_w * 2 + shadow[0] + 4)
    shown = max(1, int(np.ceil(progress * len(strokes)))) if progress < 1.0 else len(strokes)
    drawn = strokes[:shown]
    fill = _draw(shape, drawn, offset, fat)
    outline = np.clip(cv2.dilate(fill, np.ones((3, 3), np.uint8), iterations=int(outline_w)), 0, 1)
    shadow_mask = _draw(shape, drawn, offset + shadow, fat + 2 * outline_w)
    cols = [np.asarray(c, dtype=np.float32) for c in spec.colours]
    rgb, alpha = _layers([shadow_mask, outline], [cols[3], cols[2]])
    gradient = np.linspace(0.0, 1.0, shape[0], dtype=np.float32)[:, None, None]
    fill_rgb = cols[0][None, None, :] * (1 - gradient) + cols[1][None, None, :] * gradient
    rgb += (fill_rgb - rgb) * fill[..., None]
    shine = np.zeros(shape, dtype=np.uint8)
    for stroke in drawn:
        x, y = stroke[len(stroke) // 3] + offset
        cv2.circle(shine, (int(x), int(y)), max(1, int(fat * 0.12)), 255, -1, cv2.LINE_AA)
    shine_a = shine.astype(np.float32) / 255.0 * fill
    rgb += (np.float32(250.0) - rgb) * shine_a[..., None]
    sigma = 0.02 * spec.height + 0.3
    return Patch(soften(rgb, sigma * 0.5), soften(alpha, sigma))


def _scratch(spec: GraffitiSpec, rng: np.random.Generator, progress: float) -> Patch:
    strokes = _letter_strokes(rng, spec.letters, spec.height, angular=True)
    passes = []
    for stroke in strokes:
        for _ in range(int(rng.integers(2, 4))):
            passes.append(stroke + rng.normal(0.0, spec.thickness * 0.5, 2).astype(np.float32))
    shape, offset = _canvas(passes, spec.thickness * 3 + 4)
    mask = _draw(shape, _truncate(passes, progress), offset, spec.thickness)
    grain = 0.75 + 0.25 * rng.random(shape, dtype=np.float32)
    alpha = soften(mask, 0.4) * grain * 0.9
    return Patch(*_layers([alpha], [np.asarray(spec.colours[0], dtype=np.float32)]))


def _blob(spec: GraffitiSpec, rng: np.random.Generator, progress: float) -> Patch:
    r = spec.height / 2.0
    width = spec.height * max(1, spec.letters) * 0.5
    size = (int(spec.height * 2.2 + 8), int(width + spec.height * 1.2 + 8))
    mask = np.zeros(size, dtype=np.uint8)
    blobs = max(1, int(np.ceil(progress * (1 + spec.letters // 2))))
    centres = []
    for i in range(1 + spec.letters // 2):
        cx = spec.height * 0.6 + rng.uniform(0, 1) * width + 4
        cy = spec.height * 0.6 + rng.uniform(-0.15, 0.15) * r + 4
        n = 14
        angles = np.linspace(0, 2 * np.pi, n, endpoint=False)
        radii = r * np.clip(rng.normal(0.85, 0.2, n), 0.45, 1.3)
        radii = np.convolve(np.r_[radii[-1], radii, radii[0]], np.ones(3) / 3, "valid")
        pts = np.column_stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles) * 0.8])
        if i < blobs:
            cv2.fillPoly(mask, [np.round(pts * 16).astype(np.int32)], 255, cv2.LINE_AA, shift=4)
            centres.append((cx, cy))
    alpha = mask.astype(np.float32) / 255.0
    drips = []
    for _ in range(spec.drips):
        cx, cy = centres[int(rng.integers(len(centres)))]
        x = cx + rng.uniform(-0.6, 0.6) * r
        drips.append(np.array([[x, cy], [x, cy + r * rng.uniform(0.9, 1.7)]], dtype=np.float32))
    if drips:
        drawn = _draw(size, drips, np.zeros(2, np.float32), max(2.0, spec.thickness * 0.5))
        alpha = np.maximum(alpha, drawn)
    alpha = soften(alpha, 0.05 * spec.height + 0.5)
    alpha *= 0.8 + 0.2 * rng.random(size, dtype=np.float32)
    return Patch(*_layers([alpha], [np.asarray(spec.colours[0], dtype=np.float32)]))


_RENDERERS = {"tag": _tag, "piece": _piece, "scratch": _scratch, "blob": _blob}


def render(spec: GraffitiSpec, progress: float = 1.0) -> Patch:
    """Draw ``spec`` as it looks after ``progress`` (0..1] of its strokes have been sprayed."""
    rng = np.random.default_rng(spec.seed)
    patch = _RENDERERS[spec.kind](spec, rng, float(np.clip(progress, 1e-3, 1.0)))
    rgb, alpha = rotate_patch(patch.rgb, patch.alpha, spec.angle)
    return Patch(rgb, np.clip(alpha, 0.0, 1.0))


def random_spec(
    rng: np.random.Generator,
    body_height: float,
    body_colour: np.ndarray,
    kind: str | None = None,
) -> GraffitiSpec:
    """Draw a random piece of graffiti sized relative to the carriage body height."""
    kind = kind or KINDS[int(rng.choice(4, p=[0.45, 0.25, 0.12, 0.18]))]
    size = {"tag": (0.12, 0.42), "piece": (0.22, 0.55), "scratch": (0.12, 0.3), "blob": (0.1, 0.3)}
    height = body_height * rng.uniform(*size[kind])
    main = pick_contrasting(rng, GRAFFITI, body_colour)
    second = pick_contrasting(rng, GRAFFITI, main, 150.0)
    third = pick_contrasting(rng, GRAFFITI, body_colour)
    shadow = np.asarray((20, 20, 24), np.float32) if rng.random() < 0.7 else second
    if kind == "scratch":
        scratch_tones = ((235, 235, 235), (165, 165, 170), (55, 55, 60))
        main = pick_contrasting(rng, scratch_tones, body_colour, 80.0)
    thick = rng.uniform(0.05, 0.09) if rng.random() < 0.5 else rng.uniform(0.1, 0.2)
    thickness = max(2.0, height * (0.035 if kind == "scratch" else thick))
    return GraffitiSpec(
        kind=kind,
        seed=int(rng.integers(2**31)),
        height=float(height),
        letters=int(rng.integers(2, 7)),
        angle=float(rng.uniform(-20, 20)),
        thickness=float(thickness),
        colours=tuple(tuple(float(v) for v in c) for c in (main, second, third, shadow)),
        outline=bool(rng.random() < 0.4),
        drips=int(rng.integers(0, 5)) if kind in ("tag", "blob") else 0,
    )
