"""Low-level raster helpers shared by every layer of the scene.

Everything works on float32 RGB images in 0..255 so layers can be blended without the
rounding and clipping surprises of repeated uint8 arithmetic.
"""

from __future__ import annotations

import cv2
import numpy as np


def smooth_noise(rng: np.random.Generator, height: int, width: int, cell: float) -> np.ndarray:
    """Low-frequency noise in 0..1: cheap stand-in for dirt, clouds and stains."""
    small_h = max(2, int(round(height / cell)) + 1)
    small_w = max(2, int(round(width / cell)) + 1)
    small = rng.random((small_h, small_w), dtype=np.float32)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC).clip(0.0, 1.0)


def composite(
    dst: np.ndarray, rgb: np.ndarray, alpha: np.ndarray, x: int, y: int
) -> tuple[int, int, int, int] | None:
    """Blend a patch into ``dst`` at (x, y), clipped to ``dst``; returns the touched box.

    ``rgb`` is either an HxWx3 patch or a single colour broadcast over ``alpha``.
    """
    h, w = alpha.shape
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + w, dst.shape[1]), min(y + h, dst.shape[0])
    if x0 >= x1 or y0 >= y1:
        return None
    a = alpha[y0 - y : y1 - y, x0 - x : x1 - x, None]
    src = rgb[y0 - y : y1 - y, x0 - x : x1 - x] if rgb.ndim == 3 else rgb
    region = dst[y0:y1, x0:x1]
    region += (src - region) * a
    return x0, y0, x1, y1


def fill_rect(
    img: np.ndarray, x0: float, y0: float, x1: float, y1: float, colour: np.ndarray
) -> None:
    """Axis-aligned fill with clipping, in float coordinates rounded to pixels."""
    ix0, iy0 = max(int(round(x0)), 0), max(int(round(y0)), 0)
    ix1, iy1 = min(int(round(x1)), img.shape[1]), min(int(round(y1)), img.shape[0])
    if ix0 < ix1 and iy0 < iy1:
        img[iy0:iy1, ix0:ix1] = colour


def rotate_patch(
    rgb: np.ndarray, alpha: np.ndarray, angle_deg: float
) -> tuple[np.ndarray, np.ndarray]:
    """Rotate a patch about its centre on an enlarged canvas so no paint is cut off."""
    if abs(angle_deg) < 0.5:
        return rgb, alpha
    h, w = alpha.shape
    rad = np.deg2rad(angle_deg)
    new_w = int(np.ceil(abs(w * np.cos(rad)) + abs(h * np.sin(rad)))) + 2
    new_h = int(np.ceil(abs(w * np.sin(rad)) + abs(h * np.cos(rad)))) + 2
    matrix = cv2.getRotationMatrix2D((w / 2.0, h / 2.0), angle_deg, 1.0)
    matrix[0, 2] += (new_w - w) / 2.0
    matrix[1, 2] += (new_h - h) / 2.0
    flags = cv2.INTER_LINEAR
    out_rgb = cv2.warpAffine(rgb, matrix, (new_w, new_h), flags=flags)
    out_alpha = cv2.warpAffine(alpha, matrix, (new_w, new_h), flags=flags)
    return out_rgb, out_alpha


def soften(mask: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian edge softening, the look of spray paint rather than a vector fill."""
    if sigma <= 0.05:
        return mask
    return cv2.GaussianBlur(mask, (0, 0), sigmaX=sigma, sigmaY=sigma)


def vertical_gradient(height: int, width: int, top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    """HxWx3 float gradient from ``top`` to ``bottom`` colour."""
    t = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    column = top[None, None, :] * (1.0 - t) + bottom[None, None, :] * t
    return np.repeat(column, width, axis=1).astype(np.float32)


def colour(rgb: tuple[int, int, int]) -> np.ndarray:
    """Colour literal as the float32 vector every drawing helper expects."""
    return np.asarray(rgb, dtype=np.float32)
