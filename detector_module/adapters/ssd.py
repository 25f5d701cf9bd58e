"""SSD-style models with post-processing inside: TF detection zoo exports and TFLite SSD.

The four outputs that matter are boxes [1, N, 4] (ymin, xmin, ymax, xmax normalised), classes
[1, N], scores [1, N] and the count [1]. They are found by name, whatever the number and order
of outputs: TF1 exports have the four ``detection_*`` / ``num_detections``; TF2 exports add
``detection_anchor_indices``, ``raw_detection_boxes``, ``raw_detection_scores`` and
``detection_multiclass_scores`` (eight in all, listed alphabetically by converters); TFLite
SSD MobileNet names them ``TFLite_Detection_PostProcess[:1..3]`` (boxes, classes, scores,
count by suffix); converted graphs may add ``:0`` to any name. Only when the names say
nothing are the first four outputs taken in that order.
"""

from __future__ import annotations

import re

import numpy as np

from detector_module.adapters.base import Adapter, register, spatial_size
from detector_module.backends import Backend
from detector_module.detection import Candidates
from detector_module.imaging import Geometry, InputSpec
from detector_module.package import ModelPackage

_ROLES = ("boxes", "classes", "scores", "num")
# The exact TF export names (after a ``:0`` suffix is dropped) of each role.
_TF_NAMES = {"boxes": "detection_boxes", "classes": "detection_classes",
             "scores": "detection_scores", "num": "num_detections"}
# TF2 exports carry per-class scores (background first): the class count comes from them.
_MULTICLASS = ("detection_multiclass_scores", "raw_detection_scores")
_TFLITE = re.compile(r"^TFLite_Detection_PostProcess(?::(?P<index>[0-3]))?$")
_TF_SUFFIX = re.compile(r":0$")
# A label file that starts with one of these lists the background class first.
_PLACEHOLDERS = frozenset({"???", "background", "__background__"})


def _base(name: str) -> str:
    """The name without a graph path prefix (``StatefulPartitionedCall/``) or ``:0``."""
    return _TF_SUFFIX.sub("", name.rsplit("/", 1)[-1])


def _tflite_roles(names: list[str]) -> dict[str, str] | None:
    found: dict[str, str] = {}
    for name in names:
        match = _TFLITE.match(name)
        if match:
            found[_ROLES[int(match["index"] or 0)]] = name
    return found if len(found) == len(_ROLES) else None


def roles_by_name(names: list[str]) -> dict[str, str] | None:
    """Output name per role when the names identify all four, else None."""
    by_base = {_base(n): n for n in names}
    tf = {role: by_base.get(name) for role, name in _TF_NAMES.items()}
    if all(tf.values()):
        return tf  # type: ignore[return-value]
    return _tflite_roles(names)


@register
class Ssd(Adapter):
    """Boxes, classes, scores and count, matched by name; class ids index the labels."""

    format = "ssd"
    aliases = ("tf-ssd", "tflite-ssd", "ssd-mobilenet")
    summary = "SSD style (boxes, classes, scores, num_detections): TF1/TF2 zoo, TFLite SSD"

    @classmethod
    def recognises(cls, backend: Backend) -> bool:
        return roles_by_name([o.name for o in backend.outputs]) is not None

    def __init__(self, backend: Backend, package: ModelPackage) -> None:
        super().__init__(backend, package)
        names = [o.name for o in backend.outputs]
        self._roles = roles_by_name(names) or dict(zip(_ROLES, names, strict=False))
        offset = self.package.manifest.class_offset
        if offset is None:
            # TFLite SSD counts classes from 0 without the background line that its label
            # map starts with; TF exports count from 1 and index the same file directly.
            offset = int(backend.runtime == "tflite" and bool(self.labels)
                         and self.labels[0] in _PLACEHOLDERS)
        self.class_offset = offset

    def class_count(self) -> int | None:
        """TF2 exports: the per-class score width (background included) plus the offset."""
        for info in self.backend.outputs:
            if _base(info.name) in _MULTICLASS and info.shape and info.shape[-1]:
                return info.shape[-1] + self.class_offset
        return None

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
