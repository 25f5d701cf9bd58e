"""Camera and light: exposure, colour cast, vignetting, motion blur and sensor noise.

These are applied last, to the whole frame, so they change how graffiti looks but never
where it is: ground-truth boxes are unaffected by construction.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np


@dataclass(frozen=True)
class Lighting:
    """One frame's exposure; ``brightness`` 0.3 is a dim tunnel, 1.3 a sunny platform."""

    brightness: float
    tint: tuple[float, float, float]
    gamma: float
    vignette: float
    noise: float
    blur: int

    def dimmed(self, factor: float) -> Lighting:
        return replace(
            self, brightness=self.brightness * factor, noise=self.noise + (1 - factor) * 4.0
        )


def random_lighting(rng: np.random.Generator, max_blur: int = 5) -> Lighting:
    """Exposure anywhere from dim to bright, with the noise a dim sensor adds."""
    brightness = float(rng.uniform(0.35, 1.3))
    tint = tuple(float(v) for v in rng.uniform(0.85, 1.15, 3))
    return Lighting(
        brightness=brightness,
        tint=(tint[0], tint[1], tint[2]),
        gamma=float(rng.uniform(0.8, 1.25)),
        vignette=float(rng.uniform(0.0, 0.35)),
        noise=float(rng.uniform(1.0, 4.0) + (1.3 - brightness) * 4.0),
        blur=int(rng.integers(1, max_blur + 1)),
    )


def _vignette(height: int, width: int, strength: float) -> np.ndarray:
    yy = np.linspace(-1, 1, height, dtype=np.float32)[:, None]
    xx = np.linspace(-1, 1, width, dtype=np.float32)[None, :]
    return (1.0 - strength * 0.5 * (xx * xx + yy * yy)).astype(np.float32)


def apply(img: np.ndarray, light: Lighting, noise: np.ndarray | None) -> np.ndarray:
    """Turn a float scene into the uint8 RGB frame a camera would deliver.

    ``noise`` is a pre-drawn unit Gaussian field (HxW) so callers can reuse it across frames
    instead of paying for fresh random numbers every frame.
    """
    out = img
    if light.blur > 1:
        out = cv2.blur(out, (light.blur, 1))
    gain = np.asarray(light.tint, np.float32) * np.float32(light.brightness / 255.0)
    out = out * gain[None, None, :]
    if light.vignette > 0:
        out *= _vignette(out.shape[0], out.shape[1], light.vignette)[..., None]
    np.clip(out, 0.0, 1.0, out=out)
    if abs(light.gamma - 1.0) > 0.01:
        out = cv2.pow(out, 1.0 / light.gamma)
    out *= 255.0
    if noise is not None and light.noise > 0:
        out += (noise * np.float32(light.noise))[..., None]
    return np.clip(out, 0, 255).astype(np.uint8)
