"""Models the tests build with onnx.helper: each format's real signature, known outputs.

Outputs are constants (plus zero times the input, so the graph really reads its input), which
makes every expected box computable by hand in the test that uses it.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

_TYPES = {"float32": TensorProto.FLOAT, "uint8": TensorProto.UINT8,
          "int32": TensorProto.INT32, "int64": TensorProto.INT64}

Input = tuple[str, str, list[int | str]]
#: The rows of the API tests' model: on a 640x480 frame, a graffiti and a person detection.
ROWS = [[160, 160, 64, 32, 0.9, 0.1], [100, 100, 20, 20, 0.2, 0.7]]


def constant_model(inputs: list[Input], outputs: dict[str, np.ndarray],
                   metadata: dict[str, str] | None = None) -> bytes:
    """An ONNX model with the given inputs whose outputs are the given arrays."""
    nodes, inits = [], []
    first = inputs[0][0]
    nodes.append(helper.make_node("Cast", [first], ["x_f"], to=TensorProto.FLOAT))
    nodes.append(helper.make_node("ReduceMean", ["x_f"], ["x_mean"], keepdims=0))
    inits.append(numpy_helper.from_array(np.array(0.0, np.float32), "zero"))
    nodes.append(helper.make_node("Mul", ["x_mean", "zero"], ["x_zero"]))
    for name, value in outputs.items():
        const = f"const_{len(inits)}"
        inits.append(numpy_helper.from_array(value, const))
        if value.dtype == np.float32:
            nodes.append(helper.make_node("Add", [const, "x_zero"], [name]))
        else:
            nodes.append(helper.make_node("Identity", [const], [name]))
    graph = helper.make_graph(
        nodes, "test",
        [helper.make_tensor_value_info(n, _TYPES[t], s) for n, t, s in inputs],
        [helper.make_tensor_value_info(n, _TYPES[str(v.dtype)], list(v.shape))
         for n, v in outputs.items()], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for key, value in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    return model.SerializeToString()


def yolov8_output(rows: list[list[float]], classes: int, n: int = 64) -> np.ndarray:
    """A [1, 4 + classes, n] output whose first columns are ``rows`` (cx, cy, w, h, scores)."""
    out = np.zeros((1, 4 + classes, n), np.float32)
    out[0, :4, :] = 1.0  # tiny boxes with score 0 fill the rest
    for i, row in enumerate(rows):
        out[0, :, i] = row
    return out


def yolov8_model(rows: list[list[float]], classes: int, size: tuple[int, int] = (320, 320),
                 n: int = 64) -> bytes:
    w, h = size
    return constant_model([("images", "float32", [1, 3, h, w])],
                          {"output0": yolov8_output(rows, classes, n)})


def write_package(path: Path, model: bytes, labels: list[str], manifest: dict | None = None,
                  model_file: str = "model.onnx") -> Path:
    """A package zip (or folder when ``path`` has no .zip suffix)."""
    members = {model_file: model, "labels.txt": ("\n".join(labels) + "\n").encode()}
    if manifest is not None:
        members["manifest.json"] = json.dumps(manifest).encode()
    if path.suffix == ".zip":
        path.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(path, "w") as zf:
            for name, data in members.items():
                zf.writestr(name, data)
    else:
        path.mkdir(parents=True, exist_ok=True)
        for name, data in members.items():
            (path / name).write_bytes(data)
    return path


def sample_manifest(width: int, height: int, resize: str = "letterbox") -> dict:
    """A manifest in the sample model's schema (samples/package.py)."""
    return {"schema_version": 1, "name": "graffiti-sample", "version": "1.0.0",
            "format": "yolov8", "model_file": "model.onnx", "labels_file": "labels.txt",
            "input": {"width": width, "height": height, "layout": "NCHW", "color_order": "RGB",
                      "value_range": [0, 1], "resize": resize, "pad_value": 114},
            "default_min_score": 0.4, "description": "test stand-in",
            "training": {"seed": 1, "images": 10, "epochs": 1, "command": "test"}}


def _yolov8_graph(nodes: list, extra_inits: list, size: int, value: np.ndarray,
                  final: str) -> bytes:
    """A yolov8-layout model (input ``images`` 1x3xSxS, output ``output0``) whose output is
    ``value`` plus 0 times ``final``, a scalar computed by ``nodes`` from ``x_mean`` (the
    input's mean): so the misbehaving part really runs on every inference."""
    head = [helper.make_node("ReduceMean", ["images"], ["x_mean"], keepdims=0)]
    tail = [helper.make_node("Mul", [final, "zero"], ["tail_zero"]),
            helper.make_node("Add", ["const", "tail_zero"], ["output0"])]
    inits = [numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
             numpy_helper.from_array(value, "const"), *extra_inits]
    graph = helper.make_graph(
        head + nodes + tail, "misbehaving",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, list(value.shape))],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def endless_loop_model(size: int = 320) -> bytes:
    """A yolov8-layout model whose graph holds a Loop that never ends (no trip count, the
    condition stays true): its first inference never returns."""
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]),
         helper.make_node("Add", ["v_in", "one"], ["v_out"])], "body",
        [helper.make_tensor_value_info("iter", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_in", TensorProto.FLOAT, [])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_out", TensorProto.FLOAT, [])],
        [numpy_helper.from_array(np.array(1.0, np.float32), "one")])
    loop = helper.make_node("Loop", ["", "forever", "x_mean"], ["looped"], body=body)
    return _yolov8_graph([loop], [numpy_helper.from_array(np.array(True), "forever")], size,
                         yolov8_output([[160, 160, 64, 32, 0.9, 0.1]], 2), "looped")


def memory_hog_model(gigabytes: float, size: int = 320) -> bytes:
    """A yolov8-layout model whose inference expands the input's mean into a float32 tensor
    of about ``gigabytes`` GB (it depends on the input, so it cannot be folded away)."""
    side = int((gigabytes * 1e9 / 4) ** 0.5)
    shape = numpy_helper.from_array(np.array([side, side], np.int64), "hog_shape")
    nodes = [helper.make_node("Expand", ["x_mean", "hog_shape"], ["hog"]),
             helper.make_node("ReduceSum", ["hog"], ["hog_sum"], keepdims=0)]
    return _yolov8_graph(nodes, [shape], size,
                         yolov8_output([[160, 160, 64, 32, 0.9, 0.1]], 2), "hog_sum")


def nan_model(size: int = 320) -> bytes:
    """A yolov8-layout model whose scores are NaN (boxes fine): a broken export."""
    rows = [[160, 160, 64, 32, float("nan"), float("nan")]]
    return yolov8_model(rows, 2, (size, size))


def dynamic_yolov8_model(rows: list[list[float]], classes: int) -> bytes:
    """A yolov8-layout model whose input size is dynamic (the manifest must give it)."""
    return constant_model([("images", "float32", [1, 3, "h", "w"])],
                          {"output0": yolov8_output(rows, classes)})


def compact_raw(classes: int, cell: tuple[int, int], anchor: int,
                values: list[float], grid: int = 13) -> np.ndarray:
    """A Custom Vision compact ``model_outputs0`` [1, 5 * (5 + classes), grid, grid] where only
    ``anchor`` at ``cell`` (row, column) holds ``values`` (x, y, w, h, objectness, classes);
    every other anchor has objectness logit -30 (nothing there)."""
    raw = np.zeros((1, 5 * (5 + classes), grid, grid), np.float32)
    raw[0, 4::5 + classes] = -30.0
    base = anchor * (5 + classes)
    raw[0, base:base + 5 + classes, cell[0], cell[1]] = values
    return raw


def compact_model(raw: np.ndarray, metadata: dict[str, str] | None = None) -> bytes:
    """A Custom Vision compact export's signature: input ``data`` 1x3x416x416."""
    return constant_model([("data", "float32", [1, 3, 416, 416])], {"model_outputs0": raw},
                          metadata)


#: A TF2 object detection export's eight outputs (2 classes + background, 3 rows, 2 counted),
#: as TF2 ONNX converters name them; multiclass and raw scores carry the class count.
TF2_SSD = {
    "detection_anchor_indices": np.array([[7, 3, 1]], np.float32),
    "detection_boxes": np.array([[[0.1, 0.2, 0.3, 0.4], [0.5, 0.5, 1.0, 0.9], [0, 0, 1, 1]]],
                                np.float32),
    "detection_classes": np.array([[1, 2, 1]], np.float32),
    "detection_multiclass_scores": np.full((1, 3, 3), 0.1, np.float32),
    "detection_scores": np.array([[0.9, 0.7, 0.95]], np.float32),
    "num_detections": np.array([2], np.float32),
    "raw_detection_boxes": np.full((1, 12, 4), 0.5, np.float32),
    "raw_detection_scores": np.full((1, 12, 3), 0.2, np.float32),
}


def tf2_ssd_model(order: list[str], suffix: str = "") -> bytes:
    """The TF2 export with its outputs in ``order`` (names from TF2_SSD) plus ``suffix``."""
    return constant_model([("input_tensor" + suffix, "uint8", [1, 320, 320, 3])],
                          {name + suffix: TF2_SSD[name] for name in order})
