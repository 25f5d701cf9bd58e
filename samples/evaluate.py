"""Quality report for a model package on scenes never used in training.

Stills: mAP@0.5, and precision/recall at the package's default threshold. Videos (encoded
to H.264 and decoded again, like a camera stream): per graffiti appearance, the delay from
first visible to first detection when sampling at 5 fps, and frames with detections on the
distractor-only run.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from contracts.detection import Detection
from samples.inference import Detector
from samples.metrics import average_precision, iou_matrix, match_counts
from samples.world.encode import read_frames, write_mp4
from samples.world.scene import still
from samples.world.video import generate

log = logging.getLogger(__name__)

HELD_OUT_FIRST_SEED = 900_000_000
VIDEO_SEED = 9001
SAMPLE_FPS = 5
AP_MIN_SCORE = 0.01
DETECTED_IOU = 0.3
VIDEO_SCENARIOS: tuple[str, ...] = ("passing", "spraying", "clean", "tunnel")


@dataclass
class ImageReport:
    images: int
    objects: int
    map50: float
    precision: float
    recall: float
    threshold: float
    clean_images: int
    clean_images_with_detections: int


@dataclass
class Appearance:
    scenario: str
    appearance: int
    kind: str
    first_visible_s: float
    first_detected_s: float | None

    @property
    def delay_s(self) -> float | None:
        if self.first_detected_s is None:
            return None
        return round(self.first_detected_s - self.first_visible_s, 3)


@dataclass
class VideoReport:
    appearances: list[Appearance] = field(default_factory=list)
    sampled_frames: dict[str, int] = field(default_factory=dict)
    false_positive_frames: dict[str, int] = field(default_factory=dict)


def _boxes(detections: list[Detection], w: int, h: int) -> np.ndarray:
    scale = np.array([w, h, w, h], dtype=np.float64)
    return np.array([d.box for d in detections], dtype=np.float64).reshape(-1, 4) * scale


def evaluate_images(
    detector: Detector,
    count: int,
    first_seed: int = HELD_OUT_FIRST_SEED,
    clean_every: int = 5,
    width: int = 1280,
    height: int = 720,
) -> ImageReport:
    """Stills at camera resolution; every ``clean_every``-th one is distractor-only."""
    threshold = detector.manifest.default_min_score
    scored, truths = [], []
    tp = fp = 0
    clean = clean_hit = 0
    for i in range(count):
        is_clean = clean_every > 0 and i % clean_every == clean_every - 1
        shot = still(first_seed + i, width, height, graffiti_count=0 if is_clean else None)
        gt = np.array([o.box for o in shot.objects], dtype=np.float64).reshape(-1, 4)
        dets = detector.detect(shot.image, AP_MIN_SCORE)
        boxes = _boxes(dets, width, height)
        scores = np.array([d.score for d in dets])
        scored.append((boxes, scores))
        truths.append(gt)
        keep = scores >= threshold
        t, f = match_counts(boxes[keep], gt, 0.5)
        tp, fp = tp + t, fp + f
        if is_clean:
            clean += 1
            clean_hit += int(keep.any())
    total = sum(len(t) for t in truths)
    return ImageReport(
        images=count,
        objects=total,
        map50=round(average_precision(scored, truths, 0.5), 4),
        precision=round(tp / max(tp + fp, 1), 4),
        recall=round(tp / max(total, 1), 4),
        threshold=threshold,
        clean_images=clean,
        clean_images_with_detections=clean_hit,
    )


def evaluate_video(
    detector: Detector, scenario: str, seed: int, report: VideoReport, work_dir: Path
) -> None:
    """Encode the scenario, decode it at 5 fps and score appearances and false positives."""
    frames, truth = generate(scenario, seed)
    path = work_dir / f"{scenario}-{seed}.mp4"
    write_mp4(path, frames, truth.width, truth.height, truth.fps)
    every = truth.fps // SAMPLE_FPS
    first_hit: dict[int, float] = {}
    fp_frames = sampled = 0
    for index, image in read_frames(path, every):
        sampled += 1
        boxes = _boxes(detector.detect(image), truth.width, truth.height)
        objects = truth.frames[index]
        gt = np.array([o.box for o in objects], dtype=np.float64).reshape(-1, 4)
        overlaps = iou_matrix(boxes, gt)
        for j, obj in enumerate(objects):
            if len(boxes) and overlaps[:, j].max() >= DETECTED_IOU:
                first_hit.setdefault(obj.appearance, index / truth.fps)
        if len(boxes) and (len(gt) == 0 or (overlaps.max(axis=1) < DETECTED_IOU).any()):
            fp_frames += 1
    for a in truth.appearances():
        report.appearances.append(
            Appearance(
                scenario,
                int(a["id"]),
                str(a["kind"]),
                float(a["first_time_s"]),
                first_hit.get(int(a["id"])),
            )
        )
    report.sampled_frames[scenario] = sampled
    report.false_positive_frames[scenario] = fp_frames
    log.info(
        "event=video_evaluated scenario=%s seed=%d sampled=%d fp_frames=%d",
        scenario,
        seed,
        sampled,
        fp_frames,
    )


def evaluate(
    package: Path,
    images: int,
    video_seed: int = VIDEO_SEED,
    provider: str = "OpenVINOExecutionProvider",
) -> tuple[ImageReport, VideoReport]:
    detector = Detector(package, provider)
    image_report = evaluate_images(detector, images)
    log.info(
        "event=images_evaluated %s", " ".join(f"{k}={v}" for k, v in asdict(image_report).items())
    )
    video_report = VideoReport()
    with tempfile.TemporaryDirectory() as tmp:
        for scenario in VIDEO_SCENARIOS:
            evaluate_video(detector, scenario, video_seed, video_report, Path(tmp))
    return image_report, video_report


def format_report(package: Path, images: ImageReport, videos: VideoReport) -> str:
    """Plain-text report for the terminal and for pasting into docs/model.md."""
    lines = [
        f"package: {package.name}",
        f"held-out stills: {images.images} images, {images.objects} graffiti, "
        f"{images.clean_images} distractor-only",
        f"  mAP@0.5: {images.map50:.3f}",
        f"  precision @ {images.threshold:.2f}: {images.precision:.3f}",
        f"  recall    @ {images.threshold:.2f}: {images.recall:.3f}",
        f"  distractor-only stills with a detection: {images.clean_images_with_detections}"
        f"/{images.clean_images}",
        f"videos (sampled at {SAMPLE_FPS} fps, detected = IoU >= {DETECTED_IOU}):",
        f"  {'scenario':<10} {'id':>4} {'kind':<8} {'visible_s':>9} {'detected_s':>10} "
        f"{'delay_s':>7}",
    ]
    for a in videos.appearances:
        detected = f"{a.first_detected_s:.2f}" if a.first_detected_s is not None else "missed"
        delay = f"{a.delay_s:.2f}" if a.delay_s is not None else "-"
        lines.append(
            f"  {a.scenario:<10} {a.appearance:>4} {a.kind:<8} {a.first_visible_s:>9.2f}"
            f" {detected:>10} {delay:>7}"
        )
    delays = [a.delay_s for a in videos.appearances if a.delay_s is not None]
    missed = sum(a.delay_s is None for a in videos.appearances)
    lines.append(
        f"  appearances: {len(videos.appearances)}, missed: {missed}, max delay: "
        f"{max(delays) if delays else float('nan'):.2f} s"
    )
    for scenario, frames in videos.false_positive_frames.items():
        lines.append(
            f"  frames with a false detection, {scenario}: {frames}"
            f"/{videos.sampled_frames[scenario]}"
        )
    return "\n".join(lines)
