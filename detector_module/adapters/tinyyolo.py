"""ONNX model zoo Tiny YOLOv3 (the seed's model), with NMS inside the graph.

Inputs ``input_1`` [1, 3, 416, 416] (RGB 0..1, letterboxed on grey 128) and ``image_shape``
[1, 2] (original height, width); outputs boxes [1, N, 4] as y1, x1, y2, x2 in original
image pixels, scores [1, C, N] and selected indices [1, M, 3] (batch, class, box).
"""

from __future__ import annotations

import numpy as np

from detector_module.adapters.base import Adapter, register
from detector_module.backends import Backend, TensorInfo
from detector_module.detection import Candidates
from detector_module.imaging import Geometry, InputSpec
from detector_module.package import ModelPackage


def _shape_input(backend: Backend) -> TensorInfo | None:
    for info in backend.inputs:
        if info.name == "image_shape" or (len(info.shape) == 2 and info.shape[-1] == 2):
            return info
    return None


@register
class TinyYoloV3(Adapter):
    format = "tiny-yolov3"
    aliases = ("yolov3", "tiny-yolov3-onnx")
    summary = "ONNX zoo Tiny YOLOv3 (input_1 + image_shape; boxes, scores, indices)"

    @classmethod
    def recognises(cls, backend: Backend) -> bool:
        return (len(backend.inputs) == 2 and _shape_input(backend) is not None
                and len(backend.outputs) == 3)

    def __init__(self, backend: Backend, package: ModelPackage) -> None:
        super().__init__(backend, package)
        shape_input = _shape_input(backend)
        assert shape_input is not None
        self._shape_name = shape_input.name
        self._image_name = next(i.name for i in backend.inputs if i.name != shape_input.name)
        ints = [o.name for o in backend.outputs if o.dtype.startswith("int")]
        floats = [o for o in backend.outputs if o.name not in ints]
        # Outputs come as boxes, scores, indices; types and shapes confirm which is which.
        self._indices = ints[0] if ints else backend.outputs[2].name
        boxes = [o.name for o in floats if o.shape and o.shape[-1] == 4]
        self._boxes = boxes[0] if boxes else backend.outputs[0].name
        self._scores = next(o.name for o in backend.outputs
                            if o.name not in (self._indices, self._boxes))

    def class_count(self) -> int | None:
        shape = next(o.shape for o in self.backend.outputs if o.name == self._scores)
        return shape[-2] if len(shape) == 3 else None

    def default_spec(self) -> InputSpec:
        image = next(i for i in self.backend.inputs if i is not _shape_input(self.backend))
        size = (image.shape[3], image.shape[2]) if len(image.shape) == 4 else (None, None)
        w, h = (size[0] or 416, size[1] or 416)
        return InputSpec(width=w, height=h, resize="letterbox", pad_value=128)

    def feeds(self, tensor: np.ndarray, geometry: Geometry) -> dict[str, np.ndarray]:
        shape = np.array([[geometry.image_height, geometry.image_width]], np.float32)
        return {self._image_name: tensor, self._shape_name: shape}

    def decode(self, outputs: dict[str, np.ndarray], geometry: Geometry,
               floor: float) -> Candidates:
        boxes = outputs[self._boxes].reshape(-1, 4).astype(np.float64)
        scores = outputs[self._scores]
        scores = scores.reshape(scores.shape[-2], scores.shape[-1])
        picked = outputs[self._indices].reshape(-1, 3).astype(np.int64)
        if not len(picked):
            return Candidates.empty()
        class_ids, box_ids = picked[:, 1], picked[:, 2]
        chosen = scores[class_ids, box_ids].astype(np.float32)
        yxyx = boxes[box_ids]
        size = np.array([geometry.image_width, geometry.image_height] * 2, np.float64)
        xyxy = np.clip(yxyx[:, [1, 0, 3, 2]] / size, 0.0, 1.0)
        keep = chosen >= floor
        return Candidates(xyxy[keep], chosen[keep], class_ids[keep])
