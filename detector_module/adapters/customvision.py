"""Custom Vision exports: the compact ONNX grid model and the [S1] model with boxes built in.

Both read their colour order and value range from the model's ``metadata_props``
(``Image.BitmapPixelFormat`` = ``Bgr8`` or ``Rgb8``; ``Image.NominalPixelRange`` =
``NominalRange_0_255``, ``Normalized_0_1`` or ``Normalized_1_1``), as Custom Vision's own
export samples do, and take the image stretched to the input size.
"""

from __future__ import annotations

import numpy as np

from detector_module.adapters.base import Adapter, register
from detector_module.backends import Backend
from detector_module.detection import Candidates
from detector_module.imaging import Geometry, InputSpec
from detector_module.package import ModelPackage

# The five YOLOv2 anchors of Custom Vision's compact object detection domain (grid cells).
ANCHORS = np.array([[0.573, 0.677], [1.87, 2.06], [3.34, 5.47], [7.88, 3.53], [9.77, 9.17]])
#: The current official sample (customvision-export-samples, onnx/object_detection/predict.py)
#: adds the cell offset to x/y as they come; the older ones (the exported container's
#: object_detection.py, WinML ObjectDetection.cs) take a sigmoid first. No export seen
#: records which applies, so the manifest's ``xy_sigmoid`` says it, else this default.
XY_SIGMOID_DEFAULT = False
_RANGES = {"NominalRange_0_255": (0.0, 255.0), "Normalized_0_1": (0.0, 1.0),
           "Normalized_1_1": (-1.0, 1.0)}


def _metadata_spec(adapter: Adapter, default_size: tuple[int, int]) -> InputSpec:
    meta = adapter.backend.metadata
    order = "BGR" if meta.get("Image.BitmapPixelFormat", "").lower().startswith("bgr") else "RGB"
    value_range = _RANGES.get(meta.get("Image.NominalPixelRange", ""), (0.0, 1.0))
    return adapter.image_spec(default_size, color_order=order, value_range=value_range,
                              resize="stretch")


def _to_input_pixels(boxes: np.ndarray, spec: InputSpec) -> np.ndarray:
    return boxes * np.array([spec.width, spec.height, spec.width, spec.height], np.float64)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # overflow-free logistic


@register
class CustomVisionCompact(Adapter):
    """Input ``data`` 1x3x416x416; output ``model_outputs0`` [1, 5*(5+C), H, W]: per cell and
    anchor x, y (offsets in cells, or their logits when ``xy_sigmoid``), w, h (log scale of
    the anchor), objectness logit, class logits. Score = sigmoid(objectness) *
    softmax(classes)."""

    format = "customvision-compact"
    aliases = ("customvision", "custom-vision")
    summary = "Custom Vision compact ONNX (model_outputs0 grid, 5 anchors)"

    @classmethod
    def recognises(cls, backend: Backend) -> bool:
        return ({i.name for i in backend.inputs} == {"data"}
                and "model_outputs0" in {o.name for o in backend.outputs})

    def __init__(self, backend: Backend, package: ModelPackage) -> None:
        super().__init__(backend, package)
        given = package.manifest.xy_sigmoid
        #: Whether x/y are logits (older exports) or already offsets within the cell.
        self.xy_sigmoid = XY_SIGMOID_DEFAULT if given is None else given

    def class_count(self) -> int | None:
        channels = next(o.shape for o in self.backend.outputs if o.name == "model_outputs0")
        if len(channels) != 4 or not channels[1]:
            return None
        return channels[1] // len(ANCHORS) - 5

    def default_spec(self) -> InputSpec:
        return _metadata_spec(self, (416, 416))

    def decode(self, outputs: dict[str, np.ndarray], geometry: Geometry,
               floor: float) -> Candidates:
        raw = outputs["model_outputs0"][0].astype(np.float64)
        channels, grid_h, grid_w = raw.shape
        anchors = len(ANCHORS)
        classes = channels // anchors - 5
        cells = raw.transpose(1, 2, 0).reshape(grid_h, grid_w, anchors, 5 + classes)
        offsets = _sigmoid(cells[..., :2]) if self.xy_sigmoid else cells[..., :2]
        x = (offsets[..., 0] + np.arange(grid_w)[None, :, None]) / grid_w
        y = (offsets[..., 1] + np.arange(grid_h)[:, None, None]) / grid_h
        w = np.exp(cells[..., 2]) * ANCHORS[:, 0] / grid_w
        h = np.exp(cells[..., 3]) * ANCHORS[:, 1] / grid_h
        logits = cells[..., 5:]
        probs = np.exp(logits - logits.max(axis=-1, keepdims=True))
        probs = probs / probs.sum(axis=-1, keepdims=True) * _sigmoid(cells[..., 4:5])
        probs = probs.reshape(-1, classes)
        class_ids = probs.argmax(axis=1)
        scores = probs[np.arange(len(probs)), class_ids]
        boxes = np.stack([x - w / 2, y - h / 2, x + w / 2, y + h / 2], axis=-1).reshape(-1, 4)
        keep = scores >= floor
        boxes = geometry.normalise(_to_input_pixels(boxes[keep], self.spec))
        return Candidates(boxes, scores[keep].astype(np.float32), class_ids[keep])


@register
class CustomVisionS1(Adapter):
    """Outputs ``detected_boxes`` [1, N, 4] (x1, y1, x2, y2 normalised), ``detected_scores``
    [1, N] and ``detected_classes`` [1, N]; NMS is already inside the model."""

    format = "customvision-s1"
    aliases = ("customvision-s1-onnx",)
    summary = "Custom Vision [S1] ONNX (detected_boxes, detected_scores, detected_classes)"
    _OUTPUTS = frozenset({"detected_boxes", "detected_scores", "detected_classes"})

    @classmethod
    def recognises(cls, backend: Backend) -> bool:
        return {o.name for o in backend.outputs} >= cls._OUTPUTS

    def default_spec(self) -> InputSpec:
        return _metadata_spec(self, (320, 320))

    def decode(self, outputs: dict[str, np.ndarray], geometry: Geometry,
               floor: float) -> Candidates:
        boxes = outputs["detected_boxes"].reshape(-1, 4).astype(np.float64)
        scores = outputs["detected_scores"].reshape(-1).astype(np.float32)
        class_ids = outputs["detected_classes"].reshape(-1).astype(np.int64)
        keep = scores >= floor
        return Candidates(geometry.normalise(_to_input_pixels(boxes[keep], self.spec)),
                          scores[keep], class_ids[keep])
