"""A train as one long side-view strip: carriages, livery, windows, doors, dirt, signage.

The strip is rendered once and then cropped per frame, which is what makes a 60 s video of a
passing train cheap to generate.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from samples.world import distractors
from samples.world.paint import colour, composite, fill_rect, smooth_noise
from samples.world.palette import LIVERIES, STRIPES, pick, pick_contrasting

ROOF = 0.10
UNDERFRAME = 0.14
BOGIE = 0.16
GAP = 0.07

Box = tuple[float, float, float, float]


@dataclass
class TrainStrip:
    """Rendered train plus the geometry later layers need (all in strip pixels)."""

    rgb: np.ndarray
    alpha: np.ndarray
    body_height: int
    body_top: int
    bodies: list[Box]
    body_colours: list[np.ndarray]

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])


def strip_height(body_height: int) -> int:
    return int(round(body_height * (1 + ROOF + UNDERFRAME + BOGIE)))


@dataclass(frozen=True)
class _Body:
    """Where one carriage's body is drawn on the strip, and its livery colour."""

    x0: float
    length: float
    top: float
    b: float  # body height
    colour: np.ndarray


def _windows_and_doors(img: np.ndarray, rng: np.random.Generator, car: _Body) -> list[float]:
    """Doors at fixed fractions, windows between them; returns the door centres."""
    x0, length, top, b, body = car.x0, car.length, car.top, car.b, car.colour
    doors = [0.12, 0.88] if rng.random() < 0.6 else [0.15, 0.5, 0.85]
    door_w = b * rng.uniform(0.38, 0.46)
    door_col = body if rng.random() < 0.5 else pick_contrasting(rng, STRIPES, body, 60.0)
    win_top = top + b * rng.uniform(0.14, 0.24)
    win_h = b * rng.uniform(0.28, 0.38)
    glass = colour((35, 45, 58))
    edges = [x0 + b * 0.25] + [x0 + f * length for f in doors] + [x0 + length - b * 0.25]
    for a, c in zip(edges[:-1], edges[1:], strict=True):
        left = a + (door_w / 2 + b * 0.12 if a > x0 + b * 0.25 else 0)
        right = c - (door_w / 2 + b * 0.12 if c < x0 + length - b * 0.25 else 0)
        pitch = b * rng.uniform(0.55, 0.85)
        count = max(1, int((right - left) / pitch))
        w = (right - left) / count
        for k in range(count):
            wx0, wx1 = left + k * w + b * 0.05, left + (k + 1) * w - b * 0.05
            fill_rect(img, wx0 - 2, win_top - 2, wx1 + 2, win_top + win_h + 2, body * 0.55)
            fill_rect(img, wx0, win_top, wx1, win_top + win_h, glass)
            streak = np.array(
                [
                    [wx0 + 0.2 * w, win_top],
                    [wx0 + 0.45 * w, win_top],
                    [wx0 + 0.25 * w, win_top + win_h],
                    [wx0, win_top + win_h],
                ]
            )
            cv2.fillPoly(img, [streak.astype(np.int32)], (90, 105, 125), cv2.LINE_AA)
    centres = []
    for f in doors:
        cx = x0 + f * length
        centres.append(cx)
        dx0, dx1 = cx - door_w / 2, cx + door_w / 2
        fill_rect(img, dx0 - 2, top + b * 0.06 - 2, dx1 + 2, top + b, body * 0.4)
        fill_rect(img, dx0, top + b * 0.06, dx1, top + b, door_col)
        for wx in (dx0 + door_w * 0.12, cx + door_w * 0.12):
            fill_rect(img, wx, win_top, wx + door_w * 0.26, win_top + win_h * 1.2, glass)
        cv2.line(img, (int(cx), int(top + b * 0.06)), (int(cx), int(top + b)), (30, 30, 30), 1)
    return centres


def _weathering(
    img: np.ndarray, rng: np.random.Generator, x0: int, x1: int, top: int, b: int
) -> None:
    """Dirt gradient toward the bottom, rust blotches and a soft specular band."""
    h, w = b, x1 - x0
    region = img[top : top + h, x0:x1]
    dirt = smooth_noise(rng, h, w, b * 0.15) * np.linspace(0.2, 1.0, h, dtype=np.float32)[:, None]
    grime = colour((70, 60, 45))
    region += (grime - region) * (dirt * rng.uniform(0.05, 0.35))[..., None]
    for _ in range(int(rng.integers(0, 5))):
        r = b * rng.uniform(0.02, 0.06)
        cx, cy = rng.uniform(0, w), rng.uniform(0.5, 1.0) * h
        patch = smooth_noise(rng, int(4 * r) + 2, int(4 * r) + 2, max(r * 0.5, 1.0))
        yy, xx = np.mgrid[: patch.shape[0], : patch.shape[1]]
        fall = np.clip(1 - np.hypot(yy - 2 * r, xx - 2 * r) / (2 * r), 0, 1)
        composite(
            region,
            colour((120, 60, 25)),
            (patch * fall * 0.8).astype(np.float32),
            int(cx - 2 * r),
            int(cy - 2 * r),
        )
    band_y = rng.uniform(0.1, 0.6) * h
    profile = np.exp(-(((np.arange(h) - band_y) / (0.08 * h)) ** 2)).astype(np.float32)
    region += (255 - region) * (profile * rng.uniform(0.05, 0.22))[:, None, None]
    for sx in np.arange(rng.uniform(0.4, 0.8) * b, w, rng.uniform(0.6, 1.1) * b):
        region[:, int(sx)] *= 0.8


def _signage(img: np.ndarray, rng: np.random.Generator, car: _Body, doors: list[float],
             level: float) -> None:
    """Distractors in the places operators actually put them; ``level`` 0..1 sets how many."""
    x0, length, top, b, body = car.x0, car.length, car.top, car.b, car.colour
    fleet_x, fleet_y = x0 + b * rng.uniform(0.3, 0.6), top + b * rng.uniform(0.62, 0.8)
    distractors.fleet_number(img, rng, fleet_x, fleet_y, b * 0.07, body)
    if rng.random() < 0.5 + 0.5 * level:
        x, y = x0 + length * rng.uniform(0.25, 0.45), top + b * rng.uniform(0.58, 0.72)
        distractors.operator_name(img, rng, x, y, b * 0.12, body)
    if rng.random() < 0.4 + 0.6 * level:
        x, y = x0 + length * rng.uniform(0.55, 0.65), top + b * rng.uniform(0.6, 0.7)
        distractors.logo(img, rng, x, y, b * 0.16, body)
    for cx in doors:
        if rng.random() < 0.5 + 0.5 * level:
            y = top + b * rng.uniform(0.55, 0.75)
            distractors.warning_sticker(img, rng, cx + b * 0.26, y, b * 0.07, body)
    if rng.random() < 0.5 + 0.5 * level:
        distractors.route_sign(img, rng, doors[0] + b * 0.3, top + b * 0.2, b * 0.09, body)
    if rng.random() < 0.25 + 0.6 * level:
        x = doors[-2] + b * 0.35 if len(doors) > 2 else x0 + length * 0.55
        distractors.advert(img, rng, x, top + b * 0.57, b * 0.36, body)


def _bogies(
    img: np.ndarray, alpha: np.ndarray, x0: float, length: float, y: float, b: float
) -> None:
    for bx in (x0 + length * 0.16, x0 + length * 0.84):
        fill_rect(img, bx - b * 0.45, y, bx + b * 0.45, y + b * 0.08, colour((28, 28, 30)))
        fill_rect(alpha, bx - b * 0.45, y, bx + b * 0.45, y + b * 0.08, np.float32(1))
        for wx in (bx - b * 0.28, bx + b * 0.28):
            centre = (int(wx), int(y + b * 0.08))
            cv2.circle(img, centre, int(b * 0.08), (45, 45, 48), -1, cv2.LINE_AA)
            cv2.circle(img, centre, int(b * 0.03), (120, 120, 125), -1, cv2.LINE_AA)
            cv2.circle(alpha, centre, int(b * 0.08), 1.0, -1)


def build_train(
    rng: np.random.Generator, body_height: int, carriages: int, distractor_level: float = 0.5
) -> TrainStrip:
    """Render ``carriages`` coupled carriages sharing one livery, left to right."""
    b = body_height
    length = b * rng.uniform(4.8, 6.0)
    gap = b * GAP
    width = int(np.ceil(carriages * length + (carriages - 1) * gap))
    height = strip_height(b)
    img = np.zeros((height, width, 3), dtype=np.float32)
    alpha = np.zeros((height, width), dtype=np.float32)
    top = int(round(b * ROOF))
    body = pick(rng, LIVERIES)
    skirt = pick_contrasting(rng, LIVERIES + STRIPES, body, 60) if rng.random() < 0.5 else None
    stripes = [
        (rng.uniform(0.05, 0.9), rng.uniform(0.015, 0.07), pick(rng, STRIPES))
        for _ in range(int(rng.integers(0, 3)))
    ]
    bodies: list[Box] = []
    for i in range(carriages):
        x0 = i * (length + gap)
        x1 = x0 + length
        fill_rect(img, x0 + b * 0.05, 0, x1 - b * 0.05, top + 2, colour((150, 152, 156)))
        fill_rect(alpha, x0 + b * 0.05, 0, x1 - b * 0.05, top + 2, np.float32(1))
        fill_rect(img, x0, top, x1, top + b, body)
        fill_rect(alpha, x0, top, x1 + (gap if i < carriages - 1 else 0), top + b, np.float32(1))
        fill_rect(img, x1, top + b * 0.12, x1 + gap, top + b * 0.9, colour((25, 25, 25)))
        if skirt is not None:
            fill_rect(img, x0, top + b * 0.8, x1, top + b, skirt)
        for sy, sh, sc in stripes:
            fill_rect(img, x0, top + b * sy, x1, top + b * (sy + sh), sc)
        car = _Body(x0, length, top, b, body)
        doors = _windows_and_doors(img, rng, car)
        _signage(img, rng, car, doors, distractor_level)
        _weathering(img, rng, int(x0), int(min(x1, width)), top, b)
        under = top + b
        fill_rect(
            img, x0 + b * 0.2, under, x1 - b * 0.2, under + b * UNDERFRAME, colour((38, 38, 40))
        )
        fill_rect(alpha, x0 + b * 0.2, under, x1 - b * 0.2, under + b * UNDERFRAME, np.float32(1))
        _bogies(img, alpha, x0, length, under + b * UNDERFRAME * 0.5, b)
        bodies.append((x0, float(top), x1, float(top + b)))
    np.clip(img, 0, 255, out=img)
    return TrainStrip(img, alpha, b, top, bodies, [body] * carriages)
