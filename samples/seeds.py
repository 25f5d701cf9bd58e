"""Which seeds each use of the sample world draws from, so that none ever overlap.

A scene is a pure function of its seed, so "never seen in training" is a statement about
seed ranges. Every range the tools use is named here once and checked against the others by
the tests:

- training: recipe seed ``s`` renders stills ``s * 1 000 000 + i`` and videos
  ``s * 1 000 000 + VIDEO_OFFSET + j`` (recipe seeds stay below 800);
- threshold validation at the end of training: stills from 800 000 000;
- the held-out range, 900 000 000 to 949 999 999, which training and validation never use:
  ``python -m samples evaluate`` takes its video seeds from the start of it and derives each
  video seed's stills from it (:func:`stills_of`);
- test scenes of the unit tests: from 950 000 000.
"""

from __future__ import annotations

TRAINING_BLOCK = 1_000_000
VIDEO_OFFSET = 500_000
MAX_RECIPE_SEED = 799
VALIDATION_FIRST_SEED = 800_000_000
HELD_OUT = range(900_000_000, 950_000_000)
HELD_OUT_VIDEOS = range(900_000_000, 900_100_000)
HELD_OUT_STILLS_FIRST = 910_000_000
MAX_STILLS_PER_SEED = 100
TEST_FIRST_SEED = 950_000_000


def training_stills(recipe_seed: int, count: int) -> range:
    """Still seeds a recipe trains on."""
    first = recipe_seed * TRAINING_BLOCK
    return range(first, first + count)


def training_videos(recipe_seed: int, count: int) -> range:
    """Video seeds a recipe takes hard frames from."""
    first = recipe_seed * TRAINING_BLOCK + VIDEO_OFFSET
    return range(first, first + count)


def stills_of(video_seed: int, count: int) -> range:
    """The held-out stills that belong to held-out video seed ``video_seed``."""
    if video_seed not in HELD_OUT_VIDEOS:
        raise ValueError(f"seed {video_seed} is outside the held-out video seeds "
                         f"{HELD_OUT_VIDEOS.start}..{HELD_OUT_VIDEOS.stop - 1}")
    if not 0 < count <= MAX_STILLS_PER_SEED:
        raise ValueError(f"stills per seed must be 1..{MAX_STILLS_PER_SEED}, not {count}")
    first = HELD_OUT_STILLS_FIRST + (video_seed - HELD_OUT_VIDEOS.start) * MAX_STILLS_PER_SEED
    return range(first, first + count)
