"""Metrics and the small decode/NMS used by the sample tools."""

from __future__ import annotations

import numpy as np

from samples.inference import Letterbox, decode, letterbox, nms
from samples.metrics import average_precision, match_counts

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


def test_nms_keeps_best_of_overlapping() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30]], float)
    assert nms(boxes, np.array([0.5, 0.9, 0.3]), 0.5) == [1, 2]


def test_letterbox_pads_evenly_and_decode_maps_back() -> None:
    image = np.zeros((720, 1280, 3), np.uint8)
    boxed, geo = letterbox(image, 384, 224)
    assert boxed.shape == (224, 384, 3)
    assert (geo.pad_x, geo.pad_y) == (0.0, 4.0)
    assert boxed[0, 0, 0] == 114 and boxed[100, 100, 0] == 0
    # one candidate box centred at (192, 112) of 96 x 54 input pixels, score 0.8
    out = np.zeros((1, 5, 2), np.float32)
    out[0, :, 0] = [192, 112, 96, 54, 0.8]
    out[0, :, 1] = [10, 10, 4, 4, 0.1]
    dets = decode(out, ["graffiti"], geo, 1280, 720, 0.5)
    assert len(dets) == 1 and dets[0].label == "graffiti"
    assert np.allclose(
        dets[0].box, [0.375, (85 - 4) / 0.3 / 720, 0.625, (139 - 4) / 0.3 / 720], atol=1e-4
    )


def test_decode_stretch_geometry() -> None:
    out = np.zeros((1, 5, 1), np.float32)
    out[0, :, 0] = [160, 90, 32, 18, 0.9]
    dets = decode(out, ["graffiti"], Letterbox(0.25, 0.25, 0, 0), 1280, 720, 0.5)
    assert np.allclose(dets[0].box, [0.45, 0.45, 0.55, 0.55], atol=1e-6)
