"""SSD-style models with post-processing inside: TF detection zoo exports and TFLite SSD.

Outputs boxes [1, N, 4] (ymin, xmin, ymax, xmax normalised), classes [1, N], scores [1, N]
and num_detections [1]. TF exports name them ``detection_*``; TFLite SSD MobileNet names them
``TFLite_Detection_PostProcess[:1..3]`` in the order boxes, classes, scores, count.
"""

from __future__ import annotations

import numpy as np

from detector_module.adapters.base import Adapter, register, spatial_size
from detector_module.backends import Backend
from detector_module.detection import Candidates
from detector_module.imaging import Geometry, InputSpec
from detector_module.package import ModelPackage

_ROLES = ("boxes", "classes", "scores", "num")
# A label file that starts with one of these lists the background class first.
_PLACEHOLDERS = frozenset({"???", "background", "__background__"})


def _roles(backend: Backend) -> dict[str, str] | None:
    names = [o.name for o in backend.outputs]
    if len(names) != 4:
        return None
    by_name = {role: next((n for n in names if f"detection_{role}" in n
                           or (role == "num" and "num_detections" in n)), None)
               for role in _ROLES}
    if all(by_name.values()):
        return by_name  # type: ignore[return-value]
    if all(n.startswith("TFLite_Detection_PostProcess") for n in names):
        return dict(zip(_ROLES, names, strict=True))
    return None


@register
class Ssd(Adapter):
    format = "ssd"
    aliases = ("tf-ssd", "tflite-ssd", "ssd-mobilenet")
    summary = "SSD style (boxes, classes, scores, num_detections): TF zoo, TFLite SSD MobileNet"

    @classmethod
    def recognises(cls, backend: Backend) -> bool:
        return _roles(backend) is not None

    def __init__(self, backend: Backend, package: ModelPackage) -> None:
        super().__init__(backend, package)
        roles = _roles(backend)
        self._roles = roles or dict(zip(_ROLES, [o.name for o in backend.outputs], strict=False))
        offset = self.package.manifest.class_offset
        if offset is None:
            # TFLite SSD counts classes from 0 without the background line that its label
            # map starts with; TF exports count from 1 and index the same file directly.
            offset = int(backend.runtime == "tflite" and bool(self.labels)
                         and self.labels[0] in _PLACEHOLDERS)
        self.class_offset = offset

    def default_spec(self) -> InputSpec:
        info = self.backend.inputs[0]
        value_range = (0.0, 255.0) if info.dtype == "uint8" else (-1.0, 1.0)
        resize = "stretch" if spatial_size(info, "NHWC") else "none"
        return self.image_spec((300, 300), layout="NHWC", value_range=value_range,
                               resize=resize)

    def decode(self, outputs: dict[str, np.ndarray], geometry: Geometry,
               floor: float) -> Candidates:
        count = int(np.asarray(outputs[self._roles["num"]]).reshape(-1)[0])
        boxes = outputs[self._roles["boxes"]].reshape(-1, 4)[:count].astype(np.float64)
        scores = outputs[self._roles["scores"]].reshape(-1)[:count].astype(np.float32)
        classes = outputs[self._roles["classes"]].reshape(-1)[:count]
        class_ids = np.rint(classes).astype(np.int64) + self.class_offset
        xyxy = boxes[:, [1, 0, 3, 2]]
        if self.spec.resize == "letterbox":
            xyxy = geometry.normalise(xyxy * np.array([self.spec.width, self.spec.height] * 2))
        keep = scores >= floor
        return Candidates(np.clip(xyxy[keep], 0.0, 1.0), scores[keep], class_ids[keep])
