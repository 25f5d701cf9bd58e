"""The scene generator: determinism, and boxes that sit exactly on the drawn graffiti."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from samples.world import graffiti
from samples.world.scene import still

W, H = 480, 270
SEEDS = [3, 11, 42, 77]


def test_same_seed_gives_identical_pixels_and_boxes() -> None:
    a, b = still(5, W, H), still(5, W, H)
    assert np.array_equal(a.image, b.image)
    assert a.objects == b.objects


def test_different_seeds_give_different_scenes() -> None:
    a, b = still(5, W, H), still(6, W, H)
    assert not np.array_equal(a.image, b.image)
    assert [o.box for o in a.objects] != [o.box for o in b.objects]


@pytest.mark.parametrize("seed", SEEDS)
def test_boxes_cover_exactly_the_graffiti_pixels(seed: int) -> None:
    """Rendering the same seed without graffiti changes pixels only inside the boxes."""
    tagged = still(seed, W, H, graffiti_count=3)
    clean = still(seed, W, H, with_graffiti=False, graffiti_count=3)
    assert tagged.objects, "seed should place graffiti"
    diff = np.abs(tagged.image.astype(int) - clean.image.astype(int)).max(axis=2) > 12
    inside = np.zeros_like(diff)
    for obj in tagged.objects:
        x0, y0, x1, y1 = (int(round(v)) for v in obj.box)
        assert diff[y0:y1, x0:x1].mean() > 0.02, f"box {obj.box} holds no paint"
        inside[max(0, y0 - 6) : y1 + 6, max(0, x0 - 6) : x1 + 6] = True
    assert not (diff & ~inside).any(), "paint found outside every box"


def test_boxes_are_normalised_and_inside_the_frame() -> None:
    for seed in SEEDS:
        for obj in still(seed, W, H).objects:
            box = obj.normalised(W, H)
            assert 0.0 <= box[0] < box[2] <= 1.0
            assert 0.0 <= box[1] < box[3] <= 1.0


def test_distractor_only_image_has_no_objects_but_has_lettering() -> None:
    shot = still(8, W, H, graffiti_count=0)
    assert shot.objects == []
    edges = cv2.Canny(cv2.cvtColor(shot.image, cv2.COLOR_RGB2GRAY), 80, 160)
    assert edges.mean() > 1.0


@pytest.mark.parametrize("kind", graffiti.KINDS)
def test_spraying_progress_only_adds_paint(kind: str) -> None:
    rng = np.random.default_rng(1)
    spec = graffiti.random_spec(rng, 200.0, np.array([230, 230, 230], np.float32), kind)
    early, full = graffiti.render(spec, 0.3), graffiti.render(spec, 1.0)
    assert early.alpha.shape == full.alpha.shape
    assert 0 < early.alpha.sum() < full.alpha.sum()
