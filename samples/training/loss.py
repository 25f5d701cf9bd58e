"""Label assignment and loss for the anchor-free head.

FCOS-style assignment (cells inside the box, near its centre, on the level matching its
size; the nearest cell as a fallback so thin scratches are never left without a positive)
and an IoU-aware classification target, so the score a consumer thresholds also says how
well the box fits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

CENTRE_RADIUS = 2.5
LEVEL_RANGES: dict[float, tuple[float, float]] = {
    8.0: (0.0, 64.0),
    16.0: (48.0, 160.0),
    32.0: (128.0, 1e9),
}
BOX_WEIGHT = 2.0
FOCAL_ALPHA, FOCAL_GAMMA = 0.75, 2.0


def box_iou_giou(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Element-wise IoU and GIoU of matching xyxy rows."""
    ix = (torch.min(a[:, 2], b[:, 2]) - torch.max(a[:, 0], b[:, 0])).clamp(min=0)
    iy = (torch.min(a[:, 3], b[:, 3]) - torch.max(a[:, 1], b[:, 1])).clamp(min=0)
    inter = ix * iy
    area_a = (a[:, 2] - a[:, 0]).clamp(min=0) * (a[:, 3] - a[:, 1]).clamp(min=0)
    area_b = (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)
    union = area_a + area_b - inter + 1e-7
    iou = inter / union
    cw = torch.max(a[:, 2], b[:, 2]) - torch.min(a[:, 0], b[:, 0])
    ch = torch.max(a[:, 3], b[:, 3]) - torch.min(a[:, 1], b[:, 1])
    hull = cw * ch + 1e-7
    return iou, iou - (hull - union) / hull


def assign(points: torch.Tensor, strides: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Index of the ground-truth box each cell learns from, -1 for background. (N,)"""
    n = points.shape[0]
    if gt.numel() == 0:
        return torch.full((n,), -1, dtype=torch.long)
    x, y = points[:, 0][None], points[:, 1][None]
    ltrb = torch.stack([x - gt[:, 0:1], y - gt[:, 1:2], gt[:, 2:3] - x, gt[:, 3:4] - y], dim=-1)
    inside = ltrb.min(dim=-1).values > 0
    cx, cy = (gt[:, 0:1] + gt[:, 2:3]) / 2, (gt[:, 1:2] + gt[:, 3:4]) / 2
    radius = CENTRE_RADIUS * strides[None]
    near = ((x - cx).abs() < radius) & ((y - cy).abs() < radius)
    reach = ltrb.max(dim=-1).values
    lo = torch.tensor([LEVEL_RANGES[float(s)][0] for s in strides.unique()])
    hi = torch.tensor([LEVEL_RANGES[float(s)][1] for s in strides.unique()])
    level = torch.bucketize(strides, strides.unique())
    sized = (reach >= lo[level][None]) & (reach <= hi[level][None])
    candidate = inside & near & sized
    orphans = ~candidate.any(dim=1)
    if orphans.any():
        dist = (x - cx) ** 2 + (y - cy) ** 2 + (strides[None] != strides.min()) * 1e12
        nearest = dist[orphans].argmin(dim=1)
        candidate[orphans.nonzero().squeeze(1), nearest] = True
    area = ((gt[:, 2] - gt[:, 0]) * (gt[:, 3] - gt[:, 1]))[:, None].expand(-1, n)
    area = torch.where(candidate, area, torch.full_like(area, float("inf")))
    best_area, best = area.min(dim=0)
    return torch.where(torch.isfinite(best_area), best, torch.full_like(best, -1))


def detection_loss(
    boxes: torch.Tensor,
    logits: torch.Tensor,
    points: torch.Tensor,
    strides: torch.Tensor,
    targets: list[torch.Tensor],
) -> tuple[torch.Tensor, dict[str, float]]:
    """Varifocal classification + GIoU box loss, normalised by the number of positives."""
    cls_target = torch.zeros_like(logits)
    pred_pos, gt_pos = [], []
    for i, gt in enumerate(targets):
        matched = assign(points, strides, gt)
        pos = matched >= 0
        if pos.any():
            pred_pos.append(boxes[i, pos])
            gt_pos.append(gt[matched[pos]])
            with torch.no_grad():
                iou, _ = box_iou_giou(boxes[i, pos], gt[matched[pos]])
            cls_target[i, pos, 0] = iou.clamp(min=0.1)
    num_pos = max(1, sum(len(p) for p in pred_pos))
    prob = logits.sigmoid()
    weight = torch.where(cls_target > 0, cls_target, FOCAL_ALPHA * prob.detach().pow(FOCAL_GAMMA))
    cls_loss = (
        F.binary_cross_entropy_with_logits(logits, cls_target, reduction="none") * weight
    ).sum() / num_pos
    if pred_pos:
        _, giou = box_iou_giou(torch.cat(pred_pos), torch.cat(gt_pos))
        box_loss = (1.0 - giou).sum() / num_pos
    else:
        box_loss = boxes.sum() * 0.0
    total = cls_loss + BOX_WEIGHT * box_loss
    parts = {"cls": cls_loss.item(), "box": box_loss.item(), "pos": float(num_pos)}
    return total, parts
