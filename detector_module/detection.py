"""The post-processing every model format shares, ending in :class:`Detection` objects.

Adapters only turn raw model outputs into candidates (normalised boxes, scores, class ids);
thresholds, classes of interest, NMS and the detection cap live here once, so a twin change
applies identically to every format.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from config.detector import ThresholdSettings
from contracts.detection import Detection

#: Candidates kept before NMS. Bounds the greedy NMS at a low threshold (YOLO heads emit
#: thousands of rows) so one frame can never take seconds of CPU.
MAX_CANDIDATES = 2000
#: How far above 1 a score may come out of a model and still count as 1. A sigmoid computed
#: in float16 or bfloat16 (OpenVINO's precision hints) can round a sure score up by a step of
#: 2**-7; a row with a score further off is dropped (no probability is that large).
SCORE_SLACK = 0.01


@dataclass(frozen=True)
class Candidates:
    """Raw model output in one shape: boxes (N, 4) normalised xyxy, scores (N,), class ids."""

    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray

    @classmethod
    def empty(cls) -> Candidates:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64))

    def keep(self, mask_or_index: np.ndarray) -> Candidates:
        return Candidates(self.boxes[mask_or_index], self.scores[mask_or_index],
                          self.class_ids[mask_or_index])


@dataclass(frozen=True)
class PostProcess:
    """The thresholds in force for one request (a snapshot of the twin's `thresholds`)."""

    min_score: float = 0.5
    label_min_score: Mapping[str, float] = field(default_factory=dict)
    nms_iou: float = 0.45
    labels: frozenset[str] = frozenset()
    max_detections: int = 100

    @classmethod
    def from_settings(cls, thresholds: ThresholdSettings) -> PostProcess:
        return cls(min_score=thresholds.min_score,
                   label_min_score=dict(thresholds.label_min_score),
                   nms_iou=thresholds.nms_iou, labels=frozenset(thresholds.labels),
                   max_detections=thresholds.max_detections)

    @property
    def floor(self) -> float:
        """The lowest score any label can pass with: adapters may drop rows below it early."""
        return min([self.min_score, *self.label_min_score.values()])

    def threshold(self, label: str) -> float:
        return self.label_min_score.get(label, self.min_score)

    def admits(self, detection: Detection) -> bool:
        """Whether a detection found under a lower floor passes these thresholds too. Greedy
        NMS never lets a weaker box suppress a stronger one, so filtering what a lower floor
        found keeps the boxes these thresholds would have found (up to the detection cap)."""
        return ((not self.labels or detection.label in self.labels)
                and detection.score >= self.threshold(detection.label))


def label_of(labels: Sequence[str], class_id: int) -> str:
    """The label of a class id; a model with more classes than labels still answers."""
    return labels[class_id] if 0 <= class_id < len(labels) else f"class_{class_id}"


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float, limit: int) -> list[int]:
    """Greedy non-maximum suppression over xyxy boxes: indices kept, best first.

    A box is dropped when its IoU with a kept box is strictly above ``iou``; at most ``limit``
    boxes are kept, so the loop ends as soon as the caller has enough.
    """
    order = np.argsort(-scores, kind="stable")
    areas = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0,
                                                                  None)
    keep: list[int] = []
    while order.size and len(keep) < limit:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        iw = np.clip(np.minimum(boxes[i, 2], boxes[rest, 2])
                     - np.maximum(boxes[i, 0], boxes[rest, 0]), 0, None)
        ih = np.clip(np.minimum(boxes[i, 3], boxes[rest, 3])
                     - np.maximum(boxes[i, 1], boxes[rest, 1]), 0, None)
        inter = iw * ih
        overlap = inter / np.maximum(areas[i] + areas[rest] - inter, 1e-12)
        order = rest[overlap <= iou]
    return keep


def postprocess(candidates: Candidates, labels: Sequence[str],
                params: PostProcess) -> list[Detection]:
    """Thresholds per label, classes of interest, class-wise NMS and the cap, best first.

    A class id below 0 (an SSD's background row under a manifest ``class_offset`` of -1)
    names no class and is dropped, and so is a row with a NaN or infinite score or box (a
    model refused at load for such outputs can still produce one on some image)."""
    finite = np.isfinite(candidates.scores) & np.isfinite(candidates.boxes).all(axis=1)
    # A score no probability can be (a model that passed its sanity image but misbehaves on
    # this one) is dropped with its row: the request is answered, never a 500.
    possible = finite & (candidates.scores <= 1.0 + SCORE_SLACK)
    c = candidates.keep(possible & (candidates.scores >= params.floor)
                        & (candidates.class_ids >= 0))
    if not len(c.scores):
        return []
    # Per-class lookups over the few distinct classes, then one vectorised mask.
    classes, inverse = np.unique(c.class_ids, return_inverse=True)
    names = [label_of(labels, int(k)) for k in classes]
    needed = np.array([params.threshold(n) for n in names], np.float32)
    allowed = np.array([not params.labels or n in params.labels for n in names])
    c = c.keep(allowed[inverse] & (c.scores >= needed[inverse]))
    if len(c.scores) > MAX_CANDIDATES:
        c = c.keep(np.argsort(-c.scores, kind="stable")[:MAX_CANDIDATES])
    boxes = np.clip(c.boxes.astype(np.float64), 0.0, 1.0)
    # Class-wise NMS in one pass: shifting each class into its own square keeps boxes of
    # different classes from ever overlapping.
    shifted = boxes + (c.class_ids.astype(np.float64) * 2.0)[:, None]
    kept = nms(shifted, c.scores, params.nms_iou, params.max_detections)
    scores = c.scores.astype(np.float64)
    # NaN fails the comparison and stays NaN, so it is never passed off as a score.
    scores = np.where(scores <= 1.0 + SCORE_SLACK, np.minimum(scores, 1.0), scores)
    return [_detection(labels, int(c.class_ids[i]), float(scores[i]), boxes[i]) for i in kept]


def _detection(labels: Sequence[str], class_id: int, score: float,
               box: np.ndarray) -> Detection:
    """One box row as the contract's 4-tuple of Python floats (not numpy scalars)."""
    x1, y1, x2, y2 = box.tolist()
    return Detection(label_of(labels, class_id), class_id, score, (x1, y1, x2, y2))
