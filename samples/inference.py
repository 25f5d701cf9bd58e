"""Run a YOLOv8-layout ONNX package on an image: letterbox, decode, NMS.

Kept small and self-contained on purpose: the detector module has its own model adapters,
and this is the stand-in the sample tools use until they can call those instead. Training
imports ``letterbox`` from here too, so train and inference preprocessing cannot drift.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from contracts.detection import Detection
from samples.package import read_package

log = logging.getLogger(__name__)

NMS_IOU = 0.5


@dataclass(frozen=True)
class Letterbox:
    """How input-pixel coordinates map back to the original image."""

    scale_x: float
    scale_y: float
    pad_x: float
    pad_y: float


def letterbox(
    image: np.ndarray,
    width: int,
    height: int,
    pad_value: int = 114,
    interpolation: int = cv2.INTER_LINEAR,
) -> tuple[np.ndarray, Letterbox]:
    """Resize keeping the aspect ratio and pad evenly on both sides (Ultralytics convention)."""
    h, w = image.shape[:2]
    scale = min(width / w, height / h)
    new_w, new_h = int(round(w * scale)), int(round(h * scale))
    resized = cv2.resize(image, (new_w, new_h), interpolation=interpolation)
    pad_x, pad_y = (width - new_w) / 2, (height - new_h) / 2
    top, left = int(round(pad_y - 0.1)), int(round(pad_x - 0.1))
    out = cv2.copyMakeBorder(
        resized,
        top,
        height - new_h - top,
        left,
        width - new_w - left,
        cv2.BORDER_CONSTANT,
        value=(pad_value, pad_value, pad_value),
    )
    return out, Letterbox(scale, scale, float(left), float(top))


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[int]:
    """Greedy non-maximum suppression over xyxy boxes; returns kept indices by score."""
    order = np.argsort(-scores)
    keep: list[int] = []
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    while len(order):
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        lo = np.maximum(boxes[i, :2], boxes[rest, :2])
        hi = np.minimum(boxes[i, 2:], boxes[rest, 2:])
        inter = np.prod(np.clip(hi - lo, 0, None), axis=1)
        overlap = inter / np.maximum(areas[i] + areas[rest] - inter, 1e-9)
        order = rest[overlap <= iou]
    return keep


def decode(
    output: np.ndarray,
    labels: list[str],
    geometry: Letterbox,
    image_w: int,
    image_h: int,
    min_score: float,
) -> list[Detection]:
    """Turn a [1, 4+C, N] YOLOv8 output into normalised detections after class-wise NMS."""
    rows = output[0].T
    scores = rows[:, 4:]
    class_ids = scores.argmax(axis=1)
    best = scores[np.arange(len(rows)), class_ids]
    keep = best >= min_score
    rows, class_ids, best = rows[keep], class_ids[keep], best[keep]
    cx, cy, w, h = rows[:, 0], rows[:, 1], rows[:, 2], rows[:, 3]
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    boxes[:, [0, 2]] = (boxes[:, [0, 2]] - geometry.pad_x) / geometry.scale_x / image_w
    boxes[:, [1, 3]] = (boxes[:, [1, 3]] - geometry.pad_y) / geometry.scale_y / image_h
    boxes = boxes.clip(0.0, 1.0)
    detections = []
    for cls in np.unique(class_ids):
        idx = np.flatnonzero(class_ids == cls)
        for i in nms(boxes[idx], best[idx], NMS_IOU):
            k = idx[i]
            detections.append(
                Detection(
                    labels[int(cls)], int(cls), float(best[k]), tuple(float(v) for v in boxes[k])
                )
            )
    return sorted(detections, key=lambda d: -d.score)


class Detector:
    """One ONNX session for a package, reused for every image (never one per call)."""

    def __init__(self, package: Path, provider: str = "OpenVINOExecutionProvider") -> None:
        self.manifest, model_bytes, self.labels = read_package(package)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 2
        options.log_severity_level = 3
        if provider == "CPUExecutionProvider":
            providers, provider_options = [provider], [{}]
        else:
            providers = [provider, "CPUExecutionProvider"]
            provider_options = [{"device_type": "CPU"}, {}]
        self.session = ort.InferenceSession(
            model_bytes, options, providers=providers, provider_options=provider_options
        )
        log.info(
            "event=model_loaded name=%s version=%s providers=%s",
            self.manifest.name,
            self.manifest.version,
            ",".join(self.session.get_providers()),
        )

    @property
    def providers(self) -> list[str]:
        return list(self.session.get_providers())

    def preprocess(self, image: np.ndarray) -> tuple[np.ndarray, Letterbox]:
        """RGB uint8 HxWx3 to the 1x3xHxW float tensor the manifest describes."""
        spec = self.manifest.input
        if spec.resize == "letterbox":
            boxed, geometry = letterbox(image, spec.width, spec.height, spec.pad_value)
        else:
            h, w = image.shape[:2]
            boxed = cv2.resize(image, (spec.width, spec.height), interpolation=cv2.INTER_LINEAR)
            geometry = Letterbox(spec.width / w, spec.height / h, 0.0, 0.0)
        tensor = boxed.astype(np.float32).transpose(2, 0, 1)[None] / np.float32(255.0)
        return np.ascontiguousarray(tensor), geometry

    def raw(self, tensor: np.ndarray) -> np.ndarray:
        return self.session.run(["output0"], {"images": tensor})[0]

    def detect(self, image: np.ndarray, min_score: float | None = None) -> list[Detection]:
        """Detections on an RGB uint8 image, at the manifest's default threshold unless given."""
        tensor, geometry = self.preprocess(image)
        threshold = self.manifest.default_min_score if min_score is None else min_score
        h, w = image.shape[:2]
        return decode(self.raw(tensor), self.labels, geometry, w, h, threshold)
