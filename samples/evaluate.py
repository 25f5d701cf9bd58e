"""Quality of a model package over many held-out seeds, through the product's own code.

For every held-out seed (:mod:`samples.seeds`), each video scenario is rendered, encoded to
H.264 as a camera would and decoded again; the frames the camera module would sample
(``sampling.detect_fps`` of the shipped twin) go to the detector module the way the camera
sends them (:mod:`samples.product`). Each seed also owns a set of stills, every fifth one
distractor-only. What the detector found is kept at a low floor, so figures at any
threshold, and the camera trigger's events, are computed afterwards without running the
model again (:mod:`samples.scoring`).

Rendering dominates, so (scenario, seed) jobs run in a small process pool, each worker with
its own model and one inference thread; results are put back in job order, so the report
does not depend on the pool.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from infra.logs import event
from samples.product import OPENVINO, Found, ProductDetector, camera_twin
from samples.seeds import HELD_OUT_VIDEOS, stills_of
from samples.world.encode import decoded_frames, write_mp4
from samples.world.scene import still
from samples.world.video import generate

log = logging.getLogger(__name__)

VIDEO_SCENARIOS: tuple[str, ...] = ("passing", "spraying", "clean", "tunnel")
STILL_WIDTH, STILL_HEIGHT = 1280, 720
CLEAN_EVERY = 5


@dataclass(frozen=True)
class Span:
    """One appearance of graffiti in a video: when it is labelled, first to last frame."""

    appearance: int
    kind: str
    first_s: float
    last_s: float


@dataclass(frozen=True)
class Sampled:
    """One sampled frame: its time, the labelled and unlabelled paint, what was found."""

    t: float
    truth: np.ndarray
    ids: tuple[int, ...]
    unlabelled: np.ndarray
    found: Found


@dataclass(frozen=True)
class VideoRun:
    scenario: str
    seed: int
    spans: tuple[Span, ...]
    samples: tuple[Sampled, ...]


@dataclass(frozen=True)
class StillsRun:
    seed: int
    truths: tuple[np.ndarray, ...]
    found: tuple[Found, ...]
    clean: tuple[bool, ...]


@dataclass(frozen=True)
class Runs:
    """Everything one evaluation measured, before any threshold is applied."""

    package: str
    version: str
    providers: tuple[str, ...]
    default_min_score: float
    seeds: tuple[int, ...]
    videos: tuple[VideoRun, ...]
    stills: tuple[StillsRun, ...]
    seconds: float


def _normalised(objects: list, width: int, height: int) -> np.ndarray:
    return np.array([o.normalised(width, height) for o in objects], np.float64).reshape(-1, 4)


def run_video(detector: ProductDetector, scenario: str, seed: int) -> VideoRun:
    """Render, encode and decode one scenario, and score the frames the camera samples."""
    frames, truth = generate(scenario, seed)
    every = max(1, round(truth.fps / camera_twin().sampling.detect_fps))
    samples = []
    with tempfile.TemporaryDirectory(prefix="samples-eval-") as tmp:
        path = Path(tmp) / f"{scenario}-{seed}.mp4"
        write_mp4(path, frames, truth.width, truth.height, truth.fps, bframes=0)
        for index, frame in decoded_frames(path, every):
            objects = truth.frames[index]
            samples.append(Sampled(
                index / truth.fps, _normalised(objects, truth.width, truth.height),
                tuple(o.appearance for o in objects),
                _normalised(truth.unlabelled[index], truth.width, truth.height),
                detector.frame(frame)))
    spans = tuple(Span(int(str(a["id"])), str(a["kind"]), float(str(a["first_time_s"])),
                       float(str(a["last_time_s"]))) for a in truth.appearances())
    return VideoRun(scenario, seed, spans, tuple(samples))


def run_stills(detector: ProductDetector, seed: int, count: int) -> StillsRun:
    """The held-out stills of one seed at camera resolution; every fifth is distractor-only."""
    truths, found, clean = [], [], []
    for i, still_seed in enumerate(stills_of(seed, count)):
        is_clean = i % CLEAN_EVERY == CLEAN_EVERY - 1
        shot = still(still_seed, STILL_WIDTH, STILL_HEIGHT,
                     graffiti_count=0 if is_clean else None)
        truths.append(_normalised(shot.objects, STILL_WIDTH, STILL_HEIGHT))
        found.append(detector.still(shot.image))
        clean.append(is_clean)
    return StillsRun(seed, tuple(truths), tuple(found), tuple(clean))


Job = tuple[str, int, int]  # (scenario or "stills", seed, stills per seed)
_worker: ProductDetector | None = None


def _start_worker(package: Path, provider: str, threads: int) -> None:
    global _worker
    _worker = ProductDetector(package, provider, threads)


def _run_job(job: Job) -> VideoRun | StillsRun:
    assert _worker is not None, "worker not initialised"
    what, seed, count = job
    started = time.monotonic()
    result = (run_stills(_worker, seed, count) if what == "stills"
              else run_video(_worker, what, seed))
    event(log, logging.INFO, "samples.evaluated", what=what, seed=seed,
          seconds=round(time.monotonic() - started, 1))
    return result


def check_seeds(seeds: list[int]) -> None:
    """Refuse a seed outside the held-out range: only those measure unseen scenes."""
    outside = [s for s in seeds if s not in HELD_OUT_VIDEOS]
    if outside:
        raise ValueError(f"seed {outside[0]} is outside the held-out video seeds "
                         f"{HELD_OUT_VIDEOS.start}..{HELD_OUT_VIDEOS.stop - 1}, which training "
                         f"never uses")
    if not seeds:
        raise ValueError("no seeds to evaluate")


def evaluate(package: Path, seeds: list[int], stills_per_seed: int = 30,
             provider: str = OPENVINO, workers: int = 2,
             scenarios: tuple[str, ...] = VIDEO_SCENARIOS) -> Runs:
    """Score ``package`` on every scenario and the stills of every seed."""
    check_seeds(seeds)
    stills_of(seeds[0], stills_per_seed)  # refuses a bad count before any work starts
    jobs: list[Job] = [(scenario, seed, 0) for seed in seeds for scenario in scenarios]
    jobs += [("stills", seed, stills_per_seed) for seed in seeds]
    started = time.monotonic()
    threads = 1 if workers > 1 else 2
    with get_context("spawn").Pool(workers, _start_worker, (package, provider, threads)) as pool:
        results = pool.map(_run_job, jobs, chunksize=1)
    probe = ProductDetector(package, provider, 1)
    return Runs(
        package=package.name, version=probe.model.package.version,
        providers=tuple(probe.providers), default_min_score=probe.default_min_score,
        seeds=tuple(seeds),
        videos=tuple(r for r in results if isinstance(r, VideoRun)),
        stills=tuple(r for r in results if isinstance(r, StillsRun)),
        seconds=round(time.monotonic() - started, 1))
