"""Write a folder of still images plus ``annotations.json`` (the sample world's GT format)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2

from samples.world.annotations import image_record, image_set
from samples.world.scene import still

log = logging.getLogger(__name__)


def generate_images(
    out_dir: Path, first_seed: int, count: int, width: int, height: int, clean_every: int = 0
) -> Path:
    """Render ``count`` stills from consecutive seeds; returns the annotations path.

    ``clean_every`` > 0 makes every n-th image distractor-only, for false-positive checks.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    records = []
    for i in range(count):
        seed = first_seed + i
        clean = clean_every > 0 and i % clean_every == clean_every - 1
        shot = still(seed, width, height, graffiti_count=0 if clean else None)
        name = f"{seed:09d}.jpg"
        cv2.imwrite(
            str(out_dir / name),
            cv2.cvtColor(shot.image, cv2.COLOR_RGB2BGR),
            [cv2.IMWRITE_JPEG_QUALITY, 92],
        )
        records.append(image_record(shot, name))
    path = out_dir / "annotations.json"
    path.write_text(json.dumps(image_set(records), indent=1) + "\n")
    log.info(
        "event=images_written dir=%s images=%d objects=%d",
        out_dir,
        count,
        sum(len(r["objects"]) for r in records),
    )
    return path
