"""Detection metrics: greedy IoU matching, average precision at one IoU threshold."""

from __future__ import annotations

import numpy as np


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of xyxy boxes, shape (len(a), len(b))."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    lo = np.maximum(a[:, None, :2], b[None, :, :2])
    hi = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=2)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-12)


def match(pred: np.ndarray, gt: np.ndarray, iou: float) -> np.ndarray:
    """True-positive flag per prediction (predictions in descending score order)."""
    hits = np.zeros(len(pred), dtype=bool)
    if len(pred) == 0 or len(gt) == 0:
        return hits
    overlaps = iou_matrix(pred, gt)
    used = np.zeros(len(gt), dtype=bool)
    for i in range(len(pred)):
        candidates = np.where(used, -1.0, overlaps[i])
        j = int(np.argmax(candidates))
        if candidates[j] >= iou:
            used[j] = True
            hits[i] = True
    return hits


def match_counts(pred: np.ndarray, gt: np.ndarray, iou: float) -> tuple[int, int]:
    """(true positives, false positives) for one image's predictions, sorted by score."""
    hits = match(pred, gt, iou)
    return int(hits.sum()), int((~hits).sum())


def average_precision(
    scored: list[tuple[np.ndarray, np.ndarray]], truths: list[np.ndarray], iou: float = 0.5
) -> float:
    """VOC-style all-point AP over a set of images.

    ``scored`` holds (boxes, scores) per image; ``truths`` the ground-truth boxes per image.
    """
    flags, scores = [], []
    for (boxes, s), gt in zip(scored, truths, strict=True):
        order = np.argsort(-s)
        flags.append(match(boxes[order], gt, iou))
        scores.append(s[order])
    total = sum(len(g) for g in truths)
    if total == 0:
        return float("nan")
    all_scores = np.concatenate(scores) if scores else np.zeros(0)
    all_flags = np.concatenate(flags) if flags else np.zeros(0, dtype=bool)
    order = np.argsort(-all_scores, kind="stable")
    tp = np.cumsum(all_flags[order])
    fp = np.cumsum(~all_flags[order])
    recall = tp / total
    precision = tp / np.maximum(tp + fp, 1)
    r = np.concatenate([[0.0], recall, [1.0]])
    p = np.concatenate([[0.0], precision, [0.0]])
    p = np.maximum.accumulate(p[::-1])[::-1]
    steps = np.flatnonzero(r[1:] != r[:-1])
    return float(np.sum((r[steps + 1] - r[steps]) * p[steps + 1]))
