"""A tiny anchor-free detector: YOLO-like backbone, small FPN, one box per grid cell.

About 1.2 M parameters: enough for the synthetic world, small enough to train on two CPU
cores within the hour and to run in a few milliseconds with OpenVINO.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

STRIDES: tuple[int, ...] = (8, 16, 32)
PRIOR_BIAS = -4.6  # sigmoid(-4.6) ~ 0.01: start out predicting "nothing here"


def conv(c_in: int, c_out: int, k: int = 3, s: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, k, s, k // 2, bias=False),
        nn.BatchNorm2d(c_out),
        nn.SiLU(inplace=True),
    )


class Residual(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.body = nn.Sequential(conv(c, c), conv(c, c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class TinyDetector(nn.Module):
    """Returns per-level raw maps [B, 4 + C, H/s, W/s]: ltrb distances (pre-softplus), logits."""

    def __init__(self, classes: int = 1) -> None:
        super().__init__()
        self.classes = classes
        self.stem = nn.Sequential(conv(3, 16, 3, 2), conv(16, 32, 3, 2))
        self.c3 = nn.Sequential(conv(32, 64, 3, 2), Residual(64))
        self.c4 = nn.Sequential(conv(64, 96, 3, 2), Residual(96))
        self.c5 = nn.Sequential(conv(96, 128, 3, 2), Residual(128))
        self.lat5 = conv(128, 96, 1)
        self.fuse4 = conv(192, 96)
        self.lat4 = conv(96, 64, 1)
        self.fuse3 = conv(128, 64)
        self.heads = nn.ModuleList(
            nn.Sequential(conv(c, c), nn.Conv2d(c, 4 + classes, 1)) for c in (64, 96, 128)
        )
        for head in self.heads:
            last = head[-1]
            assert isinstance(last, nn.Conv2d) and last.bias is not None
            nn.init.constant_(last.bias[4:], PRIOR_BIAS)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        p3 = self.c3(self.stem(x))
        p4 = self.c4(p3)
        p5 = self.c5(p4)
        up5 = F.interpolate(self.lat5(p5), size=p4.shape[-2:], mode="nearest")
        n4 = self.fuse4(torch.cat([up5, p4], dim=1))
        up4 = F.interpolate(self.lat4(n4), size=p3.shape[-2:], mode="nearest")
        n3 = self.fuse3(torch.cat([up4, p3], dim=1))
        return [head(f) for head, f in zip(self.heads, (n3, n4, p5), strict=True)]


def anchors(maps: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Cell centres (N, 2) in input pixels and the stride of each (N,)."""
    points, strides = [], []
    for raw, stride in zip(maps, STRIDES, strict=True):
        h, w = raw.shape[-2:]
        ys, xs = torch.meshgrid(
            torch.arange(h, dtype=torch.float32),
            torch.arange(w, dtype=torch.float32),
            indexing="ij",
        )
        points.append(torch.stack([xs, ys], dim=-1).reshape(-1, 2).add(0.5).mul(stride))
        strides.append(torch.full((h * w,), float(stride)))
    return torch.cat(points), torch.cat(strides)


def decode(maps: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Boxes [B, N, 4] xyxy in input pixels and class logits [B, N, C]."""
    flat = torch.cat([m.flatten(2) for m in maps], dim=2).transpose(1, 2)
    points, strides = anchors(maps)
    ltrb = F.softplus(flat[..., :4]) * strides[None, :, None]
    boxes = torch.cat([points - ltrb[..., :2], points + ltrb[..., 2:]], dim=-1)
    return boxes, flat[..., 4:]


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
