"""Ground-truth files: the sample world's own JSON, and Azure ML AutoML JSONL.

The own format (schema_version 1, documented in docs/model.md) keeps what AutoML cannot hold
(seed, graffiti kind, background); the JSONL export drops those so real Azure ML tooling can
train on the same images.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from samples.world.scene import LABEL, Still

SCHEMA_VERSION = 1


def image_record(shot: Still, file_name: str) -> dict[str, Any]:
    """Ground truth of one still image, boxes normalised [x1, y1, x2, y2]."""
    h, w = shot.image.shape[:2]
    return {
        "image": file_name,
        "width": w,
        "height": h,
        "seed": shot.seed,
        "background": shot.background,
        "objects": [
            {"label": LABEL, "kind": o.kind, "box": o.normalised(w, h)} for o in shot.objects
        ],
    }


def image_set(records: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "type": "image_set",
        "labels": [LABEL],
        "images": records,
    }


def automl_line(record: dict[str, Any], url_prefix: str) -> dict[str, Any]:
    """One AutoML object-detection JSONL entry for an image record."""
    suffix = Path(record["image"]).suffix.lstrip(".").lower() or "jpg"
    return {
        "image_url": url_prefix + record["image"],
        "image_details": {
            "format": suffix,
            "width": f"{record['width']}px",
            "height": f"{record['height']}px",
        },
        "label": [
            {
                "label": o["label"],
                "topX": o["box"][0],
                "topY": o["box"][1],
                "bottomX": o["box"][2],
                "bottomY": o["box"][3],
                "isCrowd": 0,
            }
            for o in record["objects"]
        ],
    }


def export_jsonl(annotations: Path, out: Path, url_prefix: str) -> int:
    """Write AutoML JSONL for an ``annotations.json`` image set; returns the line count."""
    data = json.loads(annotations.read_text())
    if data.get("type") != "image_set" or data.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"{annotations} is not a schema {SCHEMA_VERSION} image set")
    lines = [json.dumps(automl_line(r, url_prefix)) for r in data["images"]]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(line + "\n" for line in lines))
    return len(lines)
