"""Exports as their tools write them: TF2 SSD outputs by name, Custom Vision x/y decoding and
the class count checked against the labels, each against hand-computed boxes."""

from __future__ import annotations

import math

import numpy as np
import pytest

from detector_module.adapters import AdapterError
from tests.detector.conftest import Loader, detect
from tests.detector.models import (
    TF2_SSD,
    compact_model,
    compact_raw,
    constant_model,
    sample_manifest,
    tf2_ssd_model,
    yolov8_model,
)

# Alphabetical (tf2onnx), the saved model's signature order, and reversed.
ORDERS = [sorted(TF2_SSD),
          ["detection_boxes", "detection_classes", "detection_scores", "num_detections",
           "detection_multiclass_scores", "detection_anchor_indices", "raw_detection_boxes",
           "raw_detection_scores"],
          sorted(TF2_SSD, reverse=True)]
TF_LABELS = ["???", "person", "car"]


@pytest.mark.parametrize("order", ORDERS, ids=["alphabetical", "signature", "reversed"])
@pytest.mark.parametrize("manifest", [None, {"format": "ssd"}], ids=["recognised", "forced"])
def test_tf2_ssd_outputs_are_matched_by_name_in_any_order(
        load: Loader, order: list[str], manifest: dict | None) -> None:
    model = load(tf2_ssd_model(order), TF_LABELS, manifest)
    assert model.adapter.format == "ssd"
    dets = detect(model, 640, 480, min_score=0.5)
    # Two rows are counted; the third (0.95) lies beyond num_detections. Boxes come as
    # ymin, xmin, ymax, xmax.
    assert [(d.label, d.class_id, d.score) for d in dets] == [
        ("person", 1, pytest.approx(0.9)), ("car", 2, pytest.approx(0.7))]
    assert dets[0].box == pytest.approx((0.2, 0.1, 0.4, 0.3), abs=1e-6)
    assert dets[1].box == pytest.approx((0.5, 0.5, 0.9, 1.0), abs=1e-6)


def test_tf2_ssd_names_with_graph_suffixes_and_its_class_count(load: Loader) -> None:
    model = load(tf2_ssd_model(sorted(TF2_SSD, reverse=True), ":0"), TF_LABELS)
    assert model.adapter.class_count() == 3  # background + 2, from the multiclass scores
    [first, _] = detect(model, 640, 480, min_score=0.5)
    assert first.box == pytest.approx((0.2, 0.1, 0.4, 0.3), abs=1e-6)
    with pytest.raises(AdapterError, match="the model has 3 classes but its labels file has 2"):
        load(tf2_ssd_model(ORDERS[0]), ["person", "car"])


def test_tflite_ssd_outputs_by_suffix_whatever_their_order(load: Loader) -> None:
    values = {"": TF2_SSD["detection_boxes"], ":1": TF2_SSD["detection_classes"],
              ":2": TF2_SSD["detection_scores"], ":3": TF2_SSD["num_detections"]}
    outputs = {f"TFLite_Detection_PostProcess{s}": values[s] for s in (":3", ":2", "", ":1")}
    model = load(constant_model([("normalized_input_image_tensor", "uint8",
                                  [1, 300, 300, 3])], outputs), TF_LABELS)
    assert [d.label for d in detect(model, 300, 300, min_score=0.5)] == ["person", "car"]


@pytest.mark.parametrize(("manifest", "cx", "cy"), [
    # The current official sample: the cell offset is added to x, y as they come.
    (None, 4 + math.log(3.0), 6.0),
    ({"xy_sigmoid": False}, 4 + math.log(3.0), 6.0),
    # Older exports: sigmoid(ln 3) = 0.75, sigmoid(0) = 0.5 within the cell.
    ({"xy_sigmoid": True}, 4.75, 6.5),
], ids=["default", "false", "true"])
def test_custom_vision_compact_xy_decoding(load: Loader, manifest: dict | None, cx: float,
                                           cy: float) -> None:
    # Anchor 0 (0.573 x 0.677 cells) at row 6, column 4; w, h logits 0: the anchor's size.
    raw = compact_raw(2, (6, 4), 0, [math.log(3.0), 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    model = load(compact_model(raw), ["graffiti", "person"], manifest)
    [det] = detect(model, 832, 416, min_score=0.2)
    assert det.score == pytest.approx(0.25, abs=1e-6)  # sigmoid(0) x softmax([0, 0])
    w, h = 0.573 / 2, 0.677 / 2
    assert det.box == pytest.approx(((cx - w) / 13, (cy - h) / 13, (cx + w) / 13,
                                     (cy + h) / 13), abs=1e-5)


@pytest.mark.parametrize(("build", "classes"), [
    (lambda: yolov8_model([], 3), 3),
    (lambda: compact_model(compact_raw(3, (0, 0), 0, [0.0] * 8)), 3),
], ids=["yolov8", "customvision"])
def test_class_count_must_match_the_labels_unless_the_manifest_says_so(
        load: Loader, build, classes: int) -> None:
    with pytest.raises(AdapterError, match=f"the model has {classes} classes but its labels "
                                           "file has 2 labels"):
        load(build(), ["graffiti", "person"])
    model = load(build(), ["graffiti", "person"], {"allow_label_count_mismatch": True})
    assert model.adapter.class_count() == classes


def test_sample_model_layout_passes_the_class_check(load: Loader) -> None:
    model = load(yolov8_model([], 2), ["graffiti", "person"], sample_manifest(320, 320))
    assert model.adapter.class_count() == 2


def test_automl_faster_rcnn_is_refused_with_what_is_missing(load: Loader) -> None:
    outputs = {"boxes_0": np.zeros((1, 4), np.float32), "labels_0": np.zeros(1, np.int64),
               "scores_0": np.zeros(1, np.float32)}
    with pytest.raises(AdapterError, match="AutoML Faster R-CNN or RetinaNet.*ImageNet mean/std"):
        load(constant_model([("input", "float32", [1, 3, 600, 800])], outputs), ["a", "b"])
