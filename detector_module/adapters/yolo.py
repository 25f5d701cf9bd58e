"""YOLO heads with decoding inside the graph: YOLOv8 [1, 4+C, N] and AutoML YOLOv5 [1, N, 5+C].

Both give boxes as centre x, y, width, height in model-input pixels and take a letterboxed
RGB 0..1 image (pad 114, the Ultralytics convention). The project's sample model is YOLOv8
layout; its manifest states the input size and resize mode.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar

import numpy as np

from detector_module.adapters.base import Adapter, register
from detector_module.backends import Backend
from detector_module.detection import Candidates
from detector_module.imaging import Geometry, InputSpec


def _single_output(backend: Backend) -> tuple[int, int] | None:
    """(rows, cols) of a single static [1, rows, cols] output after a single 4-D input."""
    if len(backend.inputs) != 1 or len(backend.outputs) != 1:
        return None
    if len(backend.inputs[0].shape) != 4:
        return None
    shape = backend.outputs[0].shape
    if len(shape) != 3 or shape[1] is None or shape[2] is None:
        return None
    return shape[1], shape[2]


def _xywh_to_xyxy(xywh: np.ndarray) -> np.ndarray:
    cx, cy, w, h = (xywh[:, k].astype(np.float64) for k in range(4))
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)


class _YoloHead(Adapter):
    """What both heads share: a letterboxed input, one output read as rows of cx, cy, w, h
    and per-class scores; subclasses say how rows and scores sit in that output."""

    #: Columns before the class scores, and which axis of the output holds the class scores.
    _lead: ClassVar[int]
    _class_axis: ClassVar[int]

    @classmethod
    def recognises(cls, backend: Backend) -> bool:
        """A single [1, a, b] output whose class axis is the shorter one (fewer columns than
        candidates) and holds at least one class."""
        dims = _single_output(backend)
        if dims is None:
            return False
        columns, candidates = dims[cls._class_axis - 1], dims[2 - cls._class_axis]
        return cls._lead < columns < candidates

    def default_spec(self) -> InputSpec:
        return self.image_spec((640, 640), resize="letterbox", pad_value=114)

    def class_count(self) -> int | None:
        dims = _single_output(self.backend)
        return None if dims is None else dims[self._class_axis - 1] - self._lead

    @abstractmethod
    def rows(self, output: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The [N, 4] cx, cy, w, h boxes and the [N, C] class scores of one output."""

    def decode(self, outputs: dict[str, np.ndarray], geometry: Geometry,
               floor: float) -> Candidates:
        xywh, probs = self.rows(next(iter(outputs.values()))[0])
        class_ids = probs.argmax(axis=1)
        scores = probs[np.arange(len(probs)), class_ids]
        keep = scores >= floor
        return Candidates(geometry.normalise(_xywh_to_xyxy(xywh[keep])),
                          scores[keep].astype(np.float32), class_ids[keep])


@register
class YoloV8(_YoloHead):
    """Output [1, 4 + C, N]: rows cx, cy, w, h, then C class scores (already sigmoided)."""

    format = "yolov8"
    aliases = ("ultralytics", "yolov8-onnx", "graffiti-sample")
    summary = "YOLOv8-style single output [1, 4+C, N] (also the project's sample model)"
    _lead, _class_axis = 4, 1

    def rows(self, output: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return output[:4].T, output[4:].T


@register
class YoloV5(_YoloHead):
    """Azure ML AutoML YOLOv5 export, output [1, N, 5 + C]: cx, cy, w, h, objectness, then
    C class probabilities; score = objectness x class probability; NMS comes after."""

    format = "yolov5"
    aliases = ("automl-yolov5", "automl", "yolov5-onnx")
    summary = "Azure ML AutoML YOLOv5 ONNX [1, N, 5+C], letterboxed"
    _lead, _class_axis = 5, 2

    def rows(self, output: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return output[:, :4], output[:, 5:] * output[:, 4:5]
