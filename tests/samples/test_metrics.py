"""Metrics of the sample tools, and the training letterbox against the detector's."""

from __future__ import annotations

import numpy as np
import pytest

from detector_module.imaging import InputSpec, prepare
from samples.metrics import average_precision, match_counts
from samples.training.data import letterbox

GT = [np.array([[10, 10, 50, 50], [100, 100, 150, 140]], float)]


def test_perfect_predictions_score_ap_one() -> None:
    assert average_precision([(GT[0], np.array([0.9, 0.8]))], GT) == 1.0


def test_missing_and_wrong_predictions_lower_ap() -> None:
    half = average_precision([(GT[0][:1], np.array([0.9]))], GT)
    assert half == 0.5
    wrong = np.array([[300, 300, 340, 340], *GT[0]], float)
    ranked_first = average_precision([(wrong, np.array([0.99, 0.5, 0.4]))], GT)
    assert ranked_first < 1.0


def test_match_counts_uses_each_truth_once() -> None:
    pred = np.array([[10, 10, 50, 50], [11, 11, 50, 50]], float)
    assert match_counts(pred, GT[0], 0.5) == (1, 1)


def test_letterbox_pads_evenly() -> None:
    image = np.zeros((720, 1280, 3), np.uint8)
    boxed, geo = letterbox(image, 384, 224)
    assert boxed.shape == (224, 384, 3)
    assert (geo.pad_x, geo.pad_y) == (0.0, 4.0)
    assert boxed[0, 0, 0] == 114 and boxed[100, 100, 0] == 0


@pytest.mark.parametrize(("size", "model"), [((1280, 720), (384, 224)), ((640, 360), (512, 288)),
                                             ((640, 360), (384, 224))])
def test_training_letterbox_is_the_detectors(size: tuple[int, int],
                                             model: tuple[int, int]) -> None:
    """Training sees the very pixels and geometry the detector module feeds the model."""
    image = np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    boxed, geo = letterbox(image, *model)
    tensor, geometry = prepare(image, InputSpec(width=model[0], height=model[1]))
    pixels = np.rint(tensor[0].transpose(1, 2, 0) * 255.0).astype(np.uint8)
    assert np.array_equal(pixels, boxed)
    assert (geometry.pad_x, geometry.pad_y) == (geo.pad_x, geo.pad_y)
    assert np.isclose(geometry.scale_x, geo.scale_x) and np.isclose(geometry.scale_y, geo.scale_y)
