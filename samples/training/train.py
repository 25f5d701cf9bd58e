"""Seeded training run -> ONNX -> model package, for one recipe (model version).

Everything random is seeded (data seeds, weight init, batch order, augmentation), and torch
runs deterministic CPU kernels, so a rerun on the same machine gives the same package.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from detector_module.detection import nms
from samples.metrics import match_counts
from samples.package import (
    InputSpec,
    Manifest,
    TrainingInfo,
    package_path,
    read_package,
    write_package,
)
from samples.seeds import VALIDATION_FIRST_SEED, training_stills, training_videos
from samples.training import data
from samples.training.export import freeze_batchnorm, from_onnx, max_difference, to_onnx
from samples.training.loss import detection_loss
from samples.training.model import TinyDetector, anchors, count_parameters, decode

log = logging.getLogger(__name__)

NAME = "graffiti-sample"
LABELS = ["graffiti"]
SHIPPED = Path(__file__).resolve().parents[1] / "models"
VALIDATION_IMAGES = 300
COMMAND = "python -m samples train --version {version}"


@dataclass(frozen=True)
class Recipe:
    """One shipped model version: input size, data, schedule, and what it starts from."""

    version: str
    width: int
    height: int
    seed: int
    images: int
    epochs: int
    lr: float
    init_from: str | None
    description: str
    # A shipped package to start from instead of a checkpoint: its weights are read back
    # from its ONNX (BatchNorm folded, so BatchNorm stays frozen while fine-tuning).
    init_package: str | None = None
    # Video seeds whose four scenarios add every ``video_every``-th frame to the stills.
    video_seeds: int = 0
    video_every: int = 10

    @property
    def first_data_seed(self) -> int:
        return training_stills(self.seed, self.images).start


RECIPES: dict[str, Recipe] = {
    "1.0.0": Recipe(
        "1.0.0",
        384,
        224,
        1,
        8000,
        6,
        3e-3,
        None,
        "Demonstration graffiti detector trained on synthetic railway scenes, "
        "384x224 letterboxed input.",
    ),
    "1.1.0": Recipe(
        "1.1.0",
        512,
        288,
        2,
        2400,
        2,
        1e-3,
        "1.0.0",
        "Demonstration graffiti detector trained on synthetic railway scenes, "
        "512x288 input (no padding for 16:9), fine-tuned from 1.0.0 on new scenes.",
    ),
}


class Ema:
    """Exponential moving average of the weights: a steadier model from a short schedule."""

    def __init__(self, model: torch.nn.Module, decay: float = 0.999) -> None:
        self.model = copy.deepcopy(model).eval()
        self.decay = decay
        self.updates = 0
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.updates += 1
        d = self.decay * (1 - math.exp(-self.updates / 300))
        for ema_v, v in zip(
            self.model.state_dict().values(), model.state_dict().values(), strict=True
        ):
            if ema_v.dtype.is_floating_point:
                ema_v.mul_(d).add_(v.detach(), alpha=1 - d)
            else:
                ema_v.copy_(v)


def _augment(
    batch: torch.Tensor, boxes: list[torch.Tensor], gen: torch.Generator, width: int
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Mirror half the images and jitter exposure; graffiti has no handedness."""
    n = batch.shape[0]
    flip = torch.rand(n, generator=gen) < 0.5
    batch = torch.where(flip[:, None, None, None], batch.flip(-1), batch)
    out = []
    for i, b in enumerate(boxes):
        if flip[i] and len(b):
            b = torch.stack([width - b[:, 2], b[:, 1], width - b[:, 0], b[:, 3]], dim=1)
        out.append(b)
    gain = 0.75 + 0.5 * torch.rand(n, 1, 1, 1, generator=gen)
    bias = 0.08 * (torch.rand(n, 1, 1, 1, generator=gen) - 0.5)
    return (batch * gain + bias).clamp(0, 1), out


def _to_tensor(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255.0)


def checkpoint_path(work_dir: Path, version: str) -> Path:
    return work_dir / f"{NAME}-{version}.pt"


def training_data(recipe: Recipe, work_dir: Path) -> data.Dataset:
    """The recipe's stills, then its video frames (if any)."""
    images, boxes = data.build(
        recipe.first_data_seed,
        recipe.images,
        recipe.width,
        recipe.height,
        cache_dir=work_dir / "cache",
    )
    if not recipe.video_seeds:
        return images, boxes
    videos = training_videos(recipe.seed, recipe.video_seeds)
    frames, frame_boxes = data.build_video(videos.start, len(videos), recipe.width,
                                           recipe.height, recipe.video_every,
                                           cache_dir=work_dir / "cache")
    return np.concatenate([images, frames]), boxes + frame_boxes


def initial_model(recipe: Recipe, work_dir: Path) -> TinyDetector:
    """Fresh weights, a checkpoint of an earlier recipe, or a shipped package's weights."""
    if recipe.init_package:
        _, onnx_bytes, _ = read_package(package_path(SHIPPED, NAME, recipe.init_package))
        return from_onnx(onnx_bytes, len(LABELS))
    model = TinyDetector(len(LABELS))
    if recipe.init_from:
        state = torch.load(checkpoint_path(work_dir, recipe.init_from), weights_only=True)
        model.load_state_dict(state)
    return model


def fit(recipe: Recipe, work_dir: Path, batch_size: int = 32) -> TinyDetector:
    """Train ``recipe`` and return the EMA model (also saved as a checkpoint in work_dir)."""
    torch.manual_seed(recipe.seed)
    images, boxes = training_data(recipe, work_dir)
    model = initial_model(recipe, work_dir)
    log.info(
        "event=train_start version=%s params=%d images=%d epochs=%d size=%dx%d",
        recipe.version,
        count_parameters(model),
        len(images),
        recipe.epochs,
        recipe.width,
        recipe.height,
    )
    ema = Ema(model)
    optimiser = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=5e-4)
    steps_per_epoch = len(images) // batch_size
    total = steps_per_epoch * recipe.epochs
    warmup = max(1, min(300, total // 10))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * s / total))
    )
    gen = torch.Generator().manual_seed(recipe.seed)
    with torch.no_grad():
        points, strides = anchors(model(torch.zeros(1, 3, recipe.height, recipe.width)))
    started = time.monotonic()
    step = 0
    for epoch in range(recipe.epochs):
        model.train()
        if recipe.init_package:
            freeze_batchnorm(model)
        order = torch.randperm(len(images), generator=gen)
        for k in range(steps_per_epoch):
            idx = order[k * batch_size : (k + 1) * batch_size]
            batch = _to_tensor(images[idx.numpy()])
            targets = [torch.from_numpy(boxes[int(i)]) for i in idx]
            batch, targets = _augment(batch, targets, gen, recipe.width)
            pred_boxes, logits = decode(model(batch))
            loss, parts = detection_loss(pred_boxes, logits, points, strides, targets)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            optimiser.step()
            schedule.step()
            ema.update(model)
            step += 1
            if step % 50 == 0 or step == total:
                log.info(
                    "event=train_step version=%s epoch=%d step=%d/%d loss=%.4f cls=%.4f "
                    "box=%.4f pos=%.0f lr=%.5f elapsed_s=%.0f",
                    recipe.version,
                    epoch + 1,
                    step,
                    total,
                    loss.item(),
                    parts["cls"],
                    parts["box"],
                    parts["pos"],
                    schedule.get_last_lr()[0],
                    time.monotonic() - started,
                )
    torch.save(ema.model.state_dict(), checkpoint_path(work_dir, recipe.version))
    log.info("event=train_done version=%s seconds=%.0f", recipe.version, time.monotonic() - started)
    return ema.model


@torch.no_grad()
def pick_threshold(model: TinyDetector, recipe: Recipe, work_dir: Path) -> float:
    """Default score threshold: best F1 (IoU 0.5) on validation scenes unseen in training."""
    images, boxes = data.build(
        VALIDATION_FIRST_SEED,
        VALIDATION_IMAGES,
        recipe.width,
        recipe.height,
        cache_dir=work_dir / "cache",
    )
    grid = np.round(np.arange(0.2, 0.71, 0.05), 2)
    tp = np.zeros(len(grid))
    fp = np.zeros(len(grid))
    total_gt = sum(len(b) for b in boxes)
    for start in range(0, len(images), 32):
        pred_boxes, logits = decode(model(_to_tensor(images[start : start + 32])))
        scores = logits.sigmoid()[..., 0].numpy()
        for j, gt in enumerate(boxes[start : start + 32]):
            keep = scores[j] >= grid[0]
            b, s = pred_boxes[j].numpy()[keep], scores[j][keep]
            kept = nms(b, s, 0.5, len(s))
            b, s = b[kept], s[kept]
            for g, threshold in enumerate(grid):
                t, f = match_counts(b[s >= threshold], gt, 0.5)
                tp[g] += t
                fp[g] += f
    precision = tp / np.maximum(tp + fp, 1)
    recall = tp / max(total_gt, 1)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-9)
    best = int(np.argmax(f1))
    log.info(
        "event=threshold_picked version=%s threshold=%.2f precision=%.3f recall=%.3f",
        recipe.version,
        grid[best],
        precision[best],
        recall[best],
    )
    return float(grid[best])


def _extra_training_facts(recipe: Recipe) -> dict[str, object]:
    """Manifest facts only recipes that use them carry (older manifests stay as shipped)."""
    facts: dict[str, object] = {}
    if recipe.init_package:
        facts["init_package"] = f"{NAME}-{recipe.init_package}"
    if recipe.video_seeds:
        videos = training_videos(recipe.seed, recipe.video_seeds)
        facts["video_seeds"] = [videos.start, videos.stop - 1]
        facts["video_every"] = recipe.video_every
    return facts


def train(version: str, out_dir: Path, work_dir: Path) -> Path:
    """Run a recipe end to end and write ``out_dir/graffiti-sample-<version>.zip``."""
    torch.set_num_threads(2)
    torch.use_deterministic_algorithms(True)
    recipe = RECIPES[version]
    if recipe.init_from and not checkpoint_path(work_dir, recipe.init_from).exists():
        train(recipe.init_from, out_dir, work_dir)
    model = fit(recipe, work_dir).eval()
    threshold = pick_threshold(model, recipe, work_dir)
    onnx_bytes = to_onnx(model, recipe.width, recipe.height)
    log.info(
        "event=onnx_exported version=%s bytes=%d max_abs_diff=%.2e",
        version,
        len(onnx_bytes),
        max_difference(model, onnx_bytes, recipe.width, recipe.height),
    )
    manifest = Manifest(
        name=NAME,
        version=version,
        input=InputSpec(width=recipe.width, height=recipe.height),
        default_min_score=threshold,
        description=recipe.description,
        training=TrainingInfo(
            seed=recipe.seed,
            images=recipe.images,
            epochs=recipe.epochs,
            command=COMMAND.format(version=version),
            init_from=recipe.init_from,
            parameters=count_parameters(model),
            **_extra_training_facts(recipe),
        ),
    )
    path = write_package(package_path(out_dir, NAME, version), manifest, onnx_bytes, LABELS)
    log.info("event=package_written path=%s bytes=%d", path, path.stat().st_size)
    return path
