"""Each model format against a model with its real signature and hand-computed boxes."""

from __future__ import annotations

import math
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from contracts.detection import Detection
from detector_module.adapters import AdapterError
from detector_module.backends import BackendError, InferenceOptions
from detector_module.engine import load_model
from detector_module.package import bundled_sample, load_package
from tests.detector.conftest import Loader, detect
from tests.detector.models import (
    constant_model,
    sample_manifest,
    write_package,
    yolov8_model,
)


def assert_box(det: Detection, expected: tuple[float, float, float, float]) -> None:
    assert det.box == pytest.approx(expected, abs=1e-5)


def test_custom_vision_compact_grid_anchors_sigmoid_softmax(load: Loader) -> None:
    classes, grid = 2, 13
    raw = np.zeros((1, 5 * (5 + classes), grid, grid), np.float32)
    raw[0, 4::5 + classes] = -30.0  # objectness logit of every anchor: nothing found
    base = 1 * (5 + classes)  # anchor 1 (1.87 x 2.06 cells), cell row 6, column 4
    raw[0, base:base + 7, 6, 4] = [0.5, 0.5, 0.0, 0.0, 0.0, math.log(3.0), 0.0]
    model = load(constant_model([("data", "float32", [1, 3, 416, 416])],
                                {"model_outputs0": raw}), ["graffiti", "person"])
    assert model.adapter.format == "customvision-compact"
    [det] = detect(model, 800, 600, min_score=0.3)
    # sigmoid(0) = 0.5 objectness x softmax([ln 3, 0]) = 0.75 for class 0.
    assert (det.label, det.class_id) == ("graffiti", 0)
    assert det.score == pytest.approx(0.375, abs=1e-6)
    assert_box(det, ((4.5 - 0.935) / 13, (6.5 - 1.03) / 13, (4.5 + 0.935) / 13,
                     (6.5 + 1.03) / 13))


@pytest.mark.parametrize(("metadata", "order", "value_range"), [
    ({}, "RGB", (0.0, 1.0)),
    ({"Image.BitmapPixelFormat": "Bgr8", "Image.NominalPixelRange": "NominalRange_0_255"},
     "BGR", (0.0, 255.0)),
])
def test_custom_vision_reads_colour_order_and_range_from_metadata(
        load: Loader, metadata: dict[str, str], order: str,
        value_range: tuple[float, float]) -> None:
    model = load(constant_model([("data", "float32", [1, 3, 416, 416])],
                                {"model_outputs0": np.zeros((1, 35, 13, 13), np.float32)},
                                metadata), ["a", "b"])
    spec = model.adapter.spec
    assert (spec.color_order, spec.value_range, spec.resize) == (order, value_range, "stretch")


def test_custom_vision_s1_boxes_scores_classes(load: Loader) -> None:
    outputs = {
        "detected_boxes": np.array([[[0.1, 0.2, 0.5, 0.6], [0.6, 0.6, 0.9, 0.9]]], np.float32),
        "detected_scores": np.array([[0.9, 0.3]], np.float32),
        "detected_classes": np.array([[1, 0]], np.int64),
    }
    model = load(constant_model([("image_tensor", "float32", [1, 3, 320, 320])], outputs),
                 ["graffiti", "person"])
    assert model.adapter.format == "customvision-s1"
    [det] = detect(model, 1280, 720, min_score=0.5)
    assert (det.label, det.class_id, det.score) == ("person", 1, pytest.approx(0.9))
    assert_box(det, (0.1, 0.2, 0.5, 0.6))


def test_automl_yolov5_letterboxed_objectness_times_class_then_nms(load: Loader) -> None:
    rows = np.zeros((1, 100, 7), np.float32)
    rows[0, :, 2:4] = 1.0
    rows[0, 0] = [320, 320, 100, 50, 0.8, 0.25, 1.0]   # class 1, 0.8
    rows[0, 1] = [320, 320, 100, 50, 0.9, 0.9, 0.1]    # class 0, 0.81: other class, kept
    rows[0, 2] = [322, 320, 100, 50, 0.6, 0.0, 1.0]    # class 1, 0.6, IoU 0.96: suppressed
    model = load(constant_model([("input", "float32", [1, 3, 640, 640])], {"output": rows}),
                 ["graffiti", "person"])
    assert model.adapter.format == "yolov5"
    dets = detect(model, 1280, 720, min_score=0.5)
    assert [(d.class_id, round(d.score, 4)) for d in dets] == [(0, 0.81), (1, 0.8)]
    # 1280x720 -> 640x360 at scale 0.5, padded 140 px top and bottom.
    assert_box(dets[1], (540 / 1280, 310 / 720, 740 / 1280, 410 / 720))


def test_tiny_yolov3_zoo_signature_boxes_in_original_pixels(load: Loader) -> None:
    outputs = {
        "yolonms_layer_1/ExpandDims_1:0": np.array(
            [[[48, 64, 240, 320], [96, 320, 480, 640], [0, 0, 10, 10]]], np.float32),
        "yolonms_layer_1/ExpandDims_3:0": np.zeros((1, 3, 3), np.float32),
        "yolonms_layer_1/concat_2:0": np.array([[[0, 2, 0], [0, 1, 1]]], np.int32),
    }
    outputs["yolonms_layer_1/ExpandDims_3:0"][0, 2, 0] = 0.8
    outputs["yolonms_layer_1/ExpandDims_3:0"][0, 1, 1] = 0.6
    model = load(constant_model([("input_1", "float32", [1, 3, 416, 416]),
                                 ("image_shape", "float32", [1, 2])], outputs),
                 ["person", "car", "graffiti"])
    assert model.adapter.format == "tiny-yolov3"
    assert (model.adapter.spec.pad_value, model.adapter.spec.resize) == (128, "letterbox")
    first, second = detect(model, 640, 480, min_score=0.5)
    assert (first.label, first.score) == ("graffiti", pytest.approx(0.8))
    assert_box(first, (0.1, 0.1, 0.5, 0.5))
    assert (second.label, second.score) == ("car", pytest.approx(0.6))
    assert_box(second, (0.5, 0.2, 1.0, 1.0))


def ssd_outputs(prefix: str, suffixes: list[str]) -> dict[str, np.ndarray]:
    values = [np.array([[[0.1, 0.2, 0.3, 0.4], [0.5, 0.5, 1.0, 0.9], [0, 0, 1, 1]]], np.float32),
              np.array([[1, 2, 1]], np.float32), np.array([[0.9, 0.7, 0.95]], np.float32),
              np.array([2], np.float32)]
    return {prefix + s: v for s, v in zip(suffixes, values, strict=True)}


def test_ssd_tf_export_counts_classes_from_one(load: Loader) -> None:
    outputs = ssd_outputs("", ["detection_boxes:0", "detection_classes:0",
                               "detection_scores:0", "num_detections:0"])
    model = load(constant_model([("image_tensor:0", "uint8", [1, "h", "w", 3])], outputs),
                 ["???", "person", "car"])
    assert model.adapter.format == "ssd"
    assert model.adapter.spec.resize == "none"  # dynamic input: the image goes in as is
    dets = detect(model, 400, 300, min_score=0.5)
    # The third row scores 0.95 but lies beyond num_detections.
    assert [(d.label, d.class_id) for d in dets] == [("person", 1), ("car", 2)]
    assert_box(dets[0], (0.2, 0.1, 0.4, 0.3))
    assert_box(dets[1], (0.5, 0.5, 0.9, 1.0))


class FakeInterpreter:
    """The slice of ai_edge_litert's Interpreter the backend uses, with SSD outputs."""

    outputs = ssd_outputs("TFLite_Detection_PostProcess", ["", ":1", ":2", ":3"])
    fed: dict[int, np.ndarray] = {}

    def __init__(self, model_content: bytes, num_threads: int | None = None) -> None:
        assert model_content == b"TFL3 fake"

    def allocate_tensors(self) -> None:
        pass

    def get_input_details(self) -> list[dict]:
        return [{"name": "normalized_input_image_tensor", "index": 0,
                 "shape": np.array([1, 300, 300, 3]), "dtype": np.uint8}]

    def get_output_details(self) -> list[dict]:
        return [{"name": n, "index": i + 1, "shape": np.array(v.shape), "dtype": np.float32}
                for i, (n, v) in enumerate(self.outputs.items())]

    def set_tensor(self, index: int, value: np.ndarray) -> None:
        self.fed[index] = value

    def invoke(self) -> None:
        pass

    def get_tensor(self, index: int) -> np.ndarray:
        return list(self.outputs.values())[index - 1]


def test_tflite_ssd_through_litert_counts_classes_from_zero(
        load: Loader, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = types.ModuleType("ai_edge_litert.interpreter")
    fake.Interpreter = FakeInterpreter  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "ai_edge_litert", types.ModuleType("ai_edge_litert"))
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", fake)
    model = load(b"TFL3 fake", ["???", "person", "bicycle", "car"],
                 model_file="detect.tflite")
    assert (model.backend.runtime, model.adapter.format) == ("tflite", "ssd")
    dets = detect(model, 600, 300, min_score=0.5)
    # TFLite class 1 is the label map's third line (line 0 is the background placeholder).
    assert [(d.label, d.class_id) for d in dets] == [("bicycle", 2), ("car", 3)]
    assert FakeInterpreter.fed[0].shape == (1, 300, 300, 3)
    assert FakeInterpreter.fed[0].dtype == np.uint8


def test_tflite_without_the_extra_names_the_extra(load: Loader,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ai_edge_litert", None)
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)
    with pytest.raises(BackendError, match=r"graffiti-edge\[tflite\]"):
        load(b"TFL3 fake", ["a"], model_file="detect.tflite")


def test_yolov8_detected_from_signature_and_letterboxed(load: Loader) -> None:
    model = load(yolov8_model([[160, 160, 64, 32, 0.9, 0.1], [100, 100, 20, 20, 0.2, 0.7]], 2),
                 ["graffiti", "person"])
    assert model.adapter.format == "yolov8"
    first, second = detect(model, 640, 480)
    # 640x480 -> 320x240 at scale 0.5, 40 px of padding above.
    assert (first.label, second.label) == ("graffiti", "person")
    assert_box(first, (256 / 640, 208 / 480, 384 / 640, 272 / 480))
    assert_box(second, (180 / 640, 100 / 480, 220 / 640, 140 / 480))


def test_sample_model_manifest_sets_format_size_and_resize(load: Loader) -> None:
    rows = [[160, 96, 64, 32, 0.9]]
    model = load(yolov8_model(rows, 1, size=(320, 192)), ["graffiti"],
                 sample_manifest(320, 192, resize="stretch"))
    assert (model.package.name, model.package.version) == ("graffiti-sample", "1.0.0")
    assert (model.adapter.spec.width, model.adapter.spec.height) == (320, 192)
    [det] = detect(model, 1280, 720)
    # Stretch: input pixels scale by 1280/320 and 720/192 independently.
    assert_box(det, (128 / 320, 80 / 192, 192 / 320, 112 / 192))


def test_bundled_sample_model_loads_on_openvino_and_runs() -> None:
    path = bundled_sample()
    assert path is not None, "the product ships samples/models/graffiti-sample-<version>.zip"
    model = load_model(load_package(path), InferenceOptions(cache_dir=None))
    assert model.adapter.format == "yolov8"
    assert model.backend.providers[0] == "OpenVINOExecutionProvider"
    assert "graffiti" in model.adapter.labels
    dets = detect(model, 1280, 720, min_score=0.01)
    assert all(0 <= v <= 1 for d in dets for v in d.box)


def test_corrupt_model_file_is_a_clear_error(load: Loader) -> None:
    with pytest.raises(BackendError, match="the model cannot be opened"):
        load(b"this is not an ONNX model", ["a"])


def test_manifest_size_the_model_does_not_take_fails_at_load(load: Loader) -> None:
    with pytest.raises(BackendError, match="warm-up inference failed"):
        load(yolov8_model([], 1), ["graffiti"], sample_manifest(640, 640))


def test_unknown_signature_is_a_clear_error(load: Loader) -> None:
    model = constant_model([("x", "float32", [1, 3, 32, 32])],
                           {"logits": np.zeros((1, 10), np.float32)})
    with pytest.raises(AdapterError, match=r"set \"format\" in manifest.json.*yolov8"):
        load(model, ["a"])
    with pytest.raises(AdapterError, match="unknown model format 'detr'"):
        load(model, ["a"], {"format": "detr"})


def test_package_folder_without_manifest_takes_name_and_version_from_its_name(
        tmp_path: Path) -> None:
    folder = write_package(tmp_path / "tags-2.1", yolov8_model([], 1), ["graffiti"],
                           model_file="best.onnx")
    package = load_package(folder)
    assert (package.name, package.version, package.model_file) == ("tags", "2.1", "best.onnx")
    assert package.labels == ("graffiti",)
