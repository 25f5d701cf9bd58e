"""The shipped model packages: valid manifest, OpenVINO provider, and they detect graffiti."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from pydantic import ValidationError

from samples.metrics import iou_matrix
from samples.package import Manifest, read_package
from samples.product import ProductDetector
from samples.seeds import (
    HELD_OUT,
    MAX_RECIPE_SEED,
    TEST_FIRST_SEED,
    TRAINING_BLOCK,
    VALIDATION_FIRST_SEED,
    training_videos,
)
from samples.world.scene import still

MODELS = Path(__file__).resolve().parents[2] / "samples" / "models"
PACKAGES = sorted(MODELS.glob("graffiti-sample-*.zip"))
# Test scenes start at 950 000 000: never used for training (< 10**8), threshold
# validation (800 000 000+) or evaluation (900 000 000+). The first seeds are used as they
# come, not picked.
TAGGED_SEEDS = range(TEST_FIRST_SEED, TEST_FIRST_SEED + 4)
CLEAN_SEEDS = range(TEST_FIRST_SEED + 1000, TEST_FIRST_SEED + 1004)
W, H = 1280, 720


@pytest.fixture(scope="module", params=PACKAGES, ids=[p.name for p in PACKAGES])
def detector(request: pytest.FixtureRequest) -> ProductDetector:
    return ProductDetector(request.param, threads=2)


def test_two_versions_are_shipped_and_small() -> None:
    versions = {read_package(p)[0].version for p in PACKAGES}
    assert {"1.0.0", "1.1.0"} <= versions
    assert sum(p.stat().st_size for p in PACKAGES) < 15 * 1024 * 1024


@pytest.mark.parametrize("package", PACKAGES, ids=[p.name for p in PACKAGES])
def test_package_layout_and_manifest(package: Path) -> None:
    with zipfile.ZipFile(package) as zf:
        assert sorted(zf.namelist()) == ["labels.txt", "manifest.json", "model.onnx"]
        manifest = Manifest.model_validate_json(zf.read("manifest.json"))
        assert zf.read("labels.txt").decode().splitlines() == ["graffiti"]
        model = onnx.load_from_string(zf.read("model.onnx"))
    assert package.name == f"{manifest.name}-{manifest.version}.zip"
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 13
    (inp,), (out,) = model.graph.input, model.graph.output
    assert inp.name == "images" and out.name == "output0"
    dims = [d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert dims == [1, 3, manifest.input.height, manifest.input.width]
    assert [d.dim_value for d in out.type.tensor_type.shape.dim][:2] == [1, 5]


def test_manifest_rejects_bad_values() -> None:
    manifest = json.loads(zipfile.ZipFile(PACKAGES[0]).read("manifest.json"))
    for key, value in [("format", "ssd"), ("default_min_score", 1.5), ("model_file", "../x")]:
        with pytest.raises(ValidationError):
            Manifest.model_validate({**manifest, key: value})


def test_openvino_provider_is_used(detector: ProductDetector) -> None:
    assert "OpenVINOExecutionProvider" in detector.providers


@pytest.mark.parametrize("seed", TAGGED_SEEDS)
def test_detects_graffiti_on_held_out_image(detector: ProductDetector, seed: int) -> None:
    shot = still(seed, W, H, graffiti_count=1)
    assert len(shot.objects) == 1
    found = detector.still(shot.image).above(detector.default_min_score)
    assert len(found.scores), "no detection"
    boxes = found.boxes * [W, H, W, H]
    assert iou_matrix(boxes, np.array([shot.objects[0].box])).max() >= 0.5


@pytest.mark.parametrize("seed", CLEAN_SEEDS)
def test_nothing_on_distractor_only_image(detector: ProductDetector, seed: int) -> None:
    shot = still(seed, W, H, graffiti_count=0)
    assert len(detector.still(shot.image).above(detector.default_min_score).scores) == 0


def test_seed_ranges_never_overlap() -> None:
    """Training blocks end below validation, validation below the held-out range, and the
    held-out range below the test scenes."""
    assert training_videos(MAX_RECIPE_SEED, 1).stop <= (MAX_RECIPE_SEED + 1) * TRAINING_BLOCK
    assert (MAX_RECIPE_SEED + 1) * TRAINING_BLOCK <= VALIDATION_FIRST_SEED < HELD_OUT.start
    assert HELD_OUT.stop <= TEST_FIRST_SEED
