"""What the fixed camera sees behind and below the train."""

from __future__ import annotations

import cv2
import numpy as np

from samples.world import distractors
from samples.world.paint import colour, fill_rect, smooth_noise, vertical_gradient

KINDS: tuple[str, ...] = ("depot", "platform", "sky", "tunnel")


def _sky(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    img = vertical_gradient(
        h, w, colour((90, 140, 200)) * rng.uniform(0.7, 1.1), colour((200, 215, 230))
    )
    clouds = smooth_noise(rng, h, w, h * 0.25)
    img += (255 - img) * (np.clip(clouds - 0.45, 0, 1) * 1.4)[..., None]
    for _ in range(int(rng.integers(2, 7))):
        x, bw, bh = rng.uniform(0, w), rng.uniform(0.05, 0.2) * w, rng.uniform(0.1, 0.4) * h
        fill_rect(img, x, h * 0.62 - bh, x + bw, h, colour((70, 75, 80)) * rng.uniform(0.7, 1.3))
    return img


def _depot(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    wall = colour((120, 118, 110)) * rng.uniform(0.6, 1.1)
    img = np.empty((h, w, 3), np.float32)
    img[:] = wall
    img *= (0.8 + 0.3 * smooth_noise(rng, h, w, h * 0.1))[..., None]
    for x in np.arange(rng.uniform(0, 0.2) * w, w, rng.uniform(0.15, 0.3) * w):
        fill_rect(img, x, 0, x + 0.025 * w, h, colour((60, 65, 72)))
    for k in range(8):
        cv2.line(
            img,
            (int(k * w / 8), 0),
            (int((k + 1) * w / 8), int(0.12 * h)),
            (50, 55, 60),
            max(1, int(h / 150)),
            cv2.LINE_AA,
        )
    for x in np.arange(0.1 * w, w, 0.25 * w):
        cv2.ellipse(
            img,
            (int(x), int(0.08 * h)),
            (int(0.03 * w), int(0.01 * h)),
            0,
            0,
            360,
            (255, 250, 225),
            -1,
            cv2.LINE_AA,
        )
    return img


def _platform(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    img = vertical_gradient(h, w, colour((180, 175, 165)), colour((140, 135, 125)))
    fill_rect(img, 0, 0, w, 0.14 * h, colour((50, 55, 62)))
    for x in np.arange(0.1 * w, w, 0.3 * w):
        fill_rect(img, x - 0.06 * w, 0.13 * h, x + 0.06 * w, 0.14 * h, colour((255, 255, 235)))
        fill_rect(img, x + 0.12 * w, 0.14 * h, x + 0.135 * w, h, colour((70, 90, 110)))
    if rng.random() < 0.7:
        x = rng.uniform(0.0, 0.5) * w
        distractors.advert(img, rng, x, 0.22 * h, 0.25 * h, colour((0, 0, 0)))
    board_x = rng.uniform(0.05, 0.6) * w
    fill_rect(img, board_x, 0.17 * h, board_x + 0.3 * w, 0.23 * h, colour((20, 50, 120)))
    distractors.text(
        img,
        distractors.DESTINATIONS[int(rng.integers(6))],
        board_x + 0.01 * w,
        0.215 * h,
        0.035 * h,
        colour((250, 250, 250)),
        cv2.FONT_HERSHEY_SIMPLEX,
    )
    return img


def _tunnel(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    stone = colour((110, 100, 90)) * rng.uniform(0.7, 1.1)
    img = np.empty((h, w, 3), np.float32)
    img[:] = stone
    img *= (0.75 + 0.35 * smooth_noise(rng, h, w, h * 0.05))[..., None]
    for y in np.arange(0, h, h * 0.06):
        img[int(y)] *= 0.7
    cx = int(rng.uniform(0.3, 0.7) * w)
    cv2.ellipse(
        img,
        (cx, int(0.75 * h)),
        (int(0.35 * w), int(0.7 * h)),
        0,
        180,
        360,
        (8, 8, 10),
        -1,
        cv2.LINE_AA,
    )
    fill_rect(img, cx - 0.35 * w, 0.75 * h, cx + 0.35 * w, h, colour((8, 8, 10)))
    return img


_PAINTERS = {"depot": _depot, "platform": _platform, "sky": _sky, "tunnel": _tunnel}


def render(rng: np.random.Generator, kind: str, width: int, height: int, rail_y: int) -> np.ndarray:
    """Background of ``kind`` with ballast and rails below ``rail_y``."""
    img = _PAINTERS[kind](rng, height, width)
    ground = colour((95, 90, 85)) * rng.uniform(0.6, 1.1)
    bed = height - rail_y
    if bed > 0:
        stones = 0.7 + 0.5 * rng.random((bed, width), dtype=np.float32)
        img[rail_y:] = ground * stones[..., None]
        for offset in (0.0, 0.35):
            y = int(rail_y + offset * bed)
            fill_rect(img, 0, y, width, y + max(2, bed * 0.05), colour((170, 170, 175)))
    return np.clip(img, 0, 255)
