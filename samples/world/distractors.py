"""Things on a carriage that are NOT graffiti: clean lettering, logos, signs, stickers, adverts.

They are drawn in crisp fonts and regular geometry, which is exactly the contrast the model
has to learn: paint in a font is livery, paint in a hand is graffiti.
"""

from __future__ import annotations

import cv2
import numpy as np

from samples.world.paint import colour, composite, fill_rect, vertical_gradient
from samples.world.palette import GRAFFITI, SIGN_TEXT, pick, pick_contrasting

OPERATORS: tuple[str, ...] = (
    "NORTHLINK",
    "METRORAIL",
    "RAILCO",
    "CITY LINES",
    "REGIO",
    "EXPRESS",
    "TRANSIT",
    "VALLEY",
)
DESTINATIONS: tuple[str, ...] = ("CENTRAL", "AIRPORT", "HARBOUR", "DEPOT", "NORTH", "PARK")
SLOGANS: tuple[str, ...] = ("VISIT THE COAST", "FLY SOUTH", "NEW PHONE", "SALE", "CINEMA", "BANK")
FONTS: tuple[int, ...] = (
    cv2.FONT_HERSHEY_SIMPLEX,
    cv2.FONT_HERSHEY_DUPLEX,
    cv2.FONT_HERSHEY_TRIPLEX,
    cv2.FONT_HERSHEY_COMPLEX,
)

Box = tuple[float, float, float, float]


def text(
    img: np.ndarray, words: str, x: float, y: float, height: float, ink: np.ndarray, font: int
) -> Box:
    """Clean lettering whose cap height is ``height`` px, baseline-left at (x, y).

    OpenCV only types into 8-bit images, so the text is rasterised into a small mask and
    blended into the float image.
    """
    weight = max(1, int(round(height / 9)))
    (_, base_h), _ = cv2.getTextSize(words, font, 1.0, weight)
    scale = height / max(base_h, 1)
    (w, h), base = cv2.getTextSize(words, font, scale, weight)
    pad = weight + 2
    mask = np.zeros((h + base + 2 * pad, w + 2 * pad), np.uint8)
    cv2.putText(mask, words, (pad, pad + h), font, scale, 255, weight, cv2.LINE_AA)
    composite(img, ink, mask.astype(np.float32) / 255.0, int(x) - pad, int(y) - h - pad)
    return x, y - h, x + w, y


def fleet_number(
    img: np.ndarray, rng: np.random.Generator, x: float, y: float, h: float, body: np.ndarray
) -> Box:
    number = f"{rng.integers(100, 999)} {rng.integers(100, 999)}"
    ink = pick_contrasting(rng, SIGN_TEXT, body)
    return text(img, number, x, y + h, h, ink, FONTS[int(rng.integers(len(FONTS)))])


def operator_name(
    img: np.ndarray, rng: np.random.Generator, x: float, y: float, h: float, body: np.ndarray
) -> Box:
    name = OPERATORS[int(rng.integers(len(OPERATORS)))]
    ink = pick_contrasting(rng, SIGN_TEXT, body)
    font = FONTS[int(rng.integers(len(FONTS)))] | (cv2.FONT_ITALIC if rng.random() < 0.3 else 0)
    return text(img, name, x, y + h, h, ink, font)


def logo(
    img: np.ndarray, rng: np.random.Generator, x: float, y: float, h: float, body: np.ndarray
) -> Box:
    """Operator logos: a double arrow, rings, or a diamond, always geometric."""
    ink = pick_contrasting(rng, SIGN_TEXT + ((200, 20, 30), (0, 90, 170)), body)
    r = h / 2
    cx, cy = int(x + r), int(y + r)
    style = int(rng.integers(3))
    thick = max(1, int(h / 10))
    if style == 0:
        for dy in (-0.3, 0.3):
            yy = int(cy + dy * r)
            cv2.line(img, (int(x), yy), (int(x + 2 * r), yy), ink.tolist(), thick, cv2.LINE_AA)
        cv2.line(
            img,
            (int(x + 1.4 * r), int(cy - 0.6 * r)),
            (int(x + 0.6 * r), int(cy + 0.6 * r)),
            ink.tolist(),
            thick,
            cv2.LINE_AA,
        )
    elif style == 1:
        cv2.circle(img, (cx, cy), int(r), ink.tolist(), thick, cv2.LINE_AA)
        cv2.circle(img, (cx, cy), int(r * 0.55), ink.tolist(), -1, cv2.LINE_AA)
    else:
        pts = np.array([[cx, y], [x + 2 * r, cy], [cx, y + 2 * r], [x, cy]], np.int32)
        cv2.fillPoly(img, [pts], ink.tolist(), cv2.LINE_AA)
    return x, y, x + 2 * r, y + 2 * r


def route_sign(
    img: np.ndarray, rng: np.random.Generator, x: float, y: float, h: float, body: np.ndarray
) -> Box:
    """Amber dot-matrix destination display behind glass."""
    words = f"{rng.integers(1, 40)} {DESTINATIONS[int(rng.integers(len(DESTINATIONS)))]}"
    w = h * (0.6 * len(words) + 0.6)
    fill_rect(img, x, y, x + w, y + h, colour((12, 12, 14)))
    amber = colour((255, 170, 20)) if rng.random() < 0.7 else colour((240, 240, 240))
    text(img, words, x + 0.3 * h, y + 0.78 * h, 0.56 * h, amber, cv2.FONT_HERSHEY_PLAIN)
    step = max(2, int(h / 8))
    img[int(y) : int(y + h) : step, int(x) : int(x + w)] *= 0.45
    return x, y, x + w, y + h


def warning_sticker(
    img: np.ndarray, rng: np.random.Generator, x: float, y: float, h: float, body: np.ndarray
) -> Box:
    """Yellow triangles, blue mandatory discs and red prohibition discs."""
    kind = int(rng.integers(3))
    r = h / 2
    cx, cy = x + r, y + r
    if kind == 0:
        pts = np.array([[cx, y], [x + h, y + h], [x, y + h]], np.float32)
        cv2.fillPoly(img, [pts.astype(np.int32)], (250, 200, 0), cv2.LINE_AA)
        cv2.polylines(
            img, [pts.astype(np.int32)], True, (15, 15, 15), max(1, int(h / 12)), cv2.LINE_AA
        )
        text(
            img,
            "!",
            cx - 0.08 * h,
            y + 0.88 * h,
            0.5 * h,
            colour((15, 15, 15)),
            cv2.FONT_HERSHEY_DUPLEX,
        )
    elif kind == 1:
        cv2.circle(img, (int(cx), int(cy)), int(r), (20, 80, 180), -1, cv2.LINE_AA)
        text(
            img,
            "i",
            cx - 0.08 * h,
            cy + 0.25 * h,
            0.5 * h,
            colour((250, 250, 250)),
            cv2.FONT_HERSHEY_DUPLEX,
        )
    else:
        cv2.circle(img, (int(cx), int(cy)), int(r), (250, 250, 250), -1, cv2.LINE_AA)
        cv2.circle(
            img, (int(cx), int(cy)), int(r * 0.85), (210, 20, 30), max(1, int(h / 9)), cv2.LINE_AA
        )
        d = r * 0.6
        cv2.line(
            img,
            (int(cx - d), int(cy - d)),
            (int(cx + d), int(cy + d)),
            (210, 20, 30),
            max(1, int(h / 9)),
            cv2.LINE_AA,
        )
    return x, y, x + h, y + h


def advert(
    img: np.ndarray, rng: np.random.Generator, x: float, y: float, h: float, body: np.ndarray
) -> Box:
    """Vinyl advertising panel: colourful but framed, gradient-filled and typeset."""
    w = h * rng.uniform(2.0, 4.5)
    top, bottom = pick(rng, GRAFFITI), pick(rng, GRAFFITI)
    ix, iy = int(x), int(y)
    ih, iw = int(min(h, img.shape[0] - iy)), int(min(w, img.shape[1] - ix))
    if ih <= 0 or iw <= 0:
        return x, y, x, y
    img[iy : iy + ih, ix : ix + iw] = vertical_gradient(ih, iw, top, bottom)
    accent = pick(rng, GRAFFITI)
    cv2.circle(
        img, (int(x + w * 0.8), int(y + h * 0.45)), int(h * 0.3), accent.tolist(), -1, cv2.LINE_AA
    )
    slogan = SLOGANS[int(rng.integers(len(SLOGANS)))]
    ink = pick_contrasting(rng, SIGN_TEXT, (top + bottom) / 2)
    text(img, slogan, x + 0.08 * h, y + 0.45 * h, 0.22 * h, ink, FONTS[int(rng.integers(4))])
    text(img, "www.example.com", x + 0.08 * h, y + 0.82 * h, 0.1 * h, ink, cv2.FONT_HERSHEY_PLAIN)
    cv2.rectangle(
        img, (ix, iy), (ix + iw - 1, iy + ih - 1), (240, 240, 240), max(1, int(h / 40)), cv2.LINE_AA
    )
    return x, y, x + w, y + h
