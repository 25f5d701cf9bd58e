"""Ground-truth image sets and their Azure ML AutoML JSONL export."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest

from samples.cli import main
from samples.world.annotations import export_jsonl

PREFIX = "azureml://datastores/trainimages/paths/graffiti/"


@pytest.fixture(scope="module")
def image_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("images")
    assert (
        main(
            [
                "generate-images",
                "--out",
                str(out),
                "--count",
                "4",
                "--first-seed",
                "50",
                "--width",
                "320",
                "--height",
                "180",
                "--clean-every",
                "4",
            ]
        )
        == 0
    )
    return out / "annotations.json"


def test_image_set_matches_files(image_set: Path) -> None:
    data = json.loads(image_set.read_text())
    assert data["schema_version"] == 1 and data["type"] == "image_set"
    assert len(data["images"]) == 4
    assert data["images"][3]["objects"] == []
    for record in data["images"]:
        image = cv2.imread(str(image_set.parent / record["image"]))
        assert image.shape[:2] == (record["height"], record["width"])


def test_automl_jsonl_is_valid(image_set: Path, tmp_path: Path) -> None:
    out = tmp_path / "train.jsonl"
    assert export_jsonl(image_set, out, PREFIX) == 4
    records = json.loads(image_set.read_text())["images"]
    lines = out.read_text().splitlines()
    assert len(lines) == 4
    labelled = 0
    for line, record in zip(lines, records, strict=True):
        entry = json.loads(line)
        assert set(entry) == {"image_url", "image_details", "label"}
        assert entry["image_url"] == PREFIX + record["image"]
        assert entry["image_details"] == {
            "format": "jpg",
            "width": f"{record['width']}px",
            "height": f"{record['height']}px",
        }
        assert len(entry["label"]) == len(record["objects"])
        for box in entry["label"]:
            assert set(box) == {"label", "topX", "topY", "bottomX", "bottomY", "isCrowd"}
            assert box["label"] == "graffiti" and box["isCrowd"] == 0
            assert 0 <= box["topX"] < box["bottomX"] <= 1
            assert 0 <= box["topY"] < box["bottomY"] <= 1
            labelled += 1
    assert labelled > 0


def test_export_rejects_other_json(tmp_path: Path) -> None:
    bogus = tmp_path / "a.json"
    bogus.write_text(json.dumps({"type": "video", "schema_version": 1}))
    with pytest.raises(ValueError, match="image set"):
        export_jsonl(bogus, tmp_path / "x.jsonl", "")
