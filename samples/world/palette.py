"""Colour sets for liveries, graffiti and signage.

Graffiti colours are picked away from the carriage body colour so that every labelled tag is
actually visible; an invisible labelled tag would teach the model to hallucinate.
"""

from __future__ import annotations

import numpy as np

LIVERIES: tuple[tuple[int, int, int], ...] = (
    (236, 236, 232),  # white
    (200, 204, 208),  # silver
    (180, 30, 36),  # red
    (28, 60, 140),  # blue
    (20, 110, 70),  # green
    (240, 190, 30),  # yellow
    (70, 74, 80),  # dark grey
    (110, 40, 110),  # purple
    (230, 110, 20),  # orange
    (30, 140, 160),  # teal
)

STRIPES: tuple[tuple[int, int, int], ...] = (
    (250, 250, 250),
    (20, 20, 24),
    (200, 20, 30),
    (250, 200, 0),
    (0, 90, 170),
    (0, 150, 80),
    (120, 120, 130),
)

GRAFFITI: tuple[tuple[int, int, int], ...] = (
    (15, 15, 18),  # black
    (245, 245, 245),  # white
    (190, 195, 205),  # chrome
    (230, 20, 40),  # red
    (255, 60, 170),  # pink
    (200, 0, 200),  # magenta
    (40, 80, 240),  # blue
    (0, 200, 230),  # cyan
    (30, 200, 60),  # green
    (170, 250, 20),  # lime
    (255, 230, 0),  # yellow
    (255, 130, 0),  # orange
    (130, 40, 220),  # purple
)

SIGN_TEXT: tuple[tuple[int, int, int], ...] = ((250, 250, 250), (20, 20, 24), (250, 200, 0))


def pick(rng: np.random.Generator, options: tuple[tuple[int, int, int], ...]) -> np.ndarray:
    """One colour from ``options`` as float32."""
    return np.asarray(options[int(rng.integers(len(options)))], dtype=np.float32)


def pick_contrasting(
    rng: np.random.Generator,
    options: tuple[tuple[int, int, int], ...],
    against: np.ndarray,
    min_distance: float = 110.0,
) -> np.ndarray:
    """A colour at least ``min_distance`` (RGB Euclidean) from ``against`` when one exists."""
    arr = np.asarray(options, dtype=np.float32)
    far = arr[np.linalg.norm(arr - against[None, :], axis=1) >= min_distance]
    pool = far if len(far) else arr
    return pool[int(rng.integers(len(pool)))].copy()
