"""Video scenarios with per-frame ground truth: passing, spraying, clean, tunnel, demo.

A scenario is a lazy sequence of frames so a 60 s 720p video never sits in memory; the
ground truth is collected as the frames are produced.
"""

from __future__ import annotations

import multiprocessing
import queue
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import numpy as np

from samples.world import background, lighting
from samples.world.carriage import build_train, strip_height
from samples.world.scene import (
    MIN_VISIBLE,
    Annotation,
    Placement,
    annotate,
    frame,
    paint,
    place_graffiti,
    streams,
)

SCENARIOS: tuple[str, ...] = ("passing", "spraying", "clean", "tunnel", "demo")
SEGMENT_SECONDS = 15.0
# The demo ends on a clean stretch, so a looped demo video separates its last sighting from
# the next pass's first one, and every clip gets its full post-roll.
DEMO_PARTS = ("passing", "spraying", "clean", "tunnel", "clean")
NOISE_FIELDS = 4


@dataclass
class Truth:
    """Ground truth collected while a video is produced (see docs/model.md for the format)."""

    scenario: str
    seed: int
    width: int
    height: int
    fps: int
    frames: list[list[Annotation]] = field(default_factory=list)
    kinds: dict[int, str] = field(default_factory=dict)
    segments: list[dict[str, object]] = field(default_factory=list)
    # Paint in the frame that the 25 % rule leaves unlabelled (a tag entering or leaving the
    # view), per frame: the evaluation neither rewards nor punishes a detection of it.
    unlabelled: list[list[Annotation]] = field(default_factory=list)

    def record(self, objects: list[Annotation], unlabelled: list[Annotation] | None = None) -> None:
        self.frames.append(objects)
        self.unlabelled.append(unlabelled or [])
        for obj in objects:
            self.kinds.setdefault(obj.appearance, obj.kind)

    def appearances(self) -> list[dict[str, object]]:
        """Visibility range of every appearance: the first and last frame it is labelled."""
        spans: dict[int, list[int]] = {}
        for index, objects in enumerate(self.frames):
            for obj in objects:
                spans.setdefault(obj.appearance, [index, index])[1] = index
        return [
            {
                "id": aid,
                "label": "graffiti",
                "kind": self.kinds[aid],
                "first_frame": a,
                "last_frame": b,
                "first_time_s": round(a / self.fps, 3),
                "last_time_s": round(b / self.fps, 3),
            }
            for aid, (a, b) in sorted(spans.items())
        ]

    def to_json(self) -> dict[str, object]:
        return {
            "schema_version": 1,
            "type": "video",
            "scenario": self.scenario,
            "seed": self.seed,
            "width": self.width,
            "height": self.height,
            "fps": self.fps,
            "frame_count": len(self.frames),
            "segments": self.segments,
            "appearances": self.appearances(),
            "frames": [
                {
                    "index": i,
                    "time_s": round(i / self.fps, 3),
                    "objects": [
                        {
                            "label": "graffiti",
                            "box": o.normalised(self.width, self.height),
                            "appearance": o.appearance,
                        }
                        for o in objects
                    ],
                }
                for i, objects in enumerate(self.frames)
            ],
        }


@dataclass(frozen=True)
class Setup:
    """What differs between the moving-train scenarios."""

    background: str
    carriages: int
    tagged: tuple[int, ...]
    per_carriage: int
    distractor_level: float
    speed: float
    light: Callable[[lighting.Lighting, float], lighting.Lighting]


def _steady(light: lighting.Lighting, t: float) -> lighting.Lighting:
    return light


def _tunnel_entry(light: lighting.Lighting, t: float) -> lighting.Lighting:
    """Bright until 4 s, then a 4 s fade to a dim, warm tunnel light."""
    fade = float(np.clip((t - 4.0) / 4.0, 0.0, 1.0))
    warm = (light.tint[0] * (1 + 0.15 * fade), light.tint[1], light.tint[2] * (1 - 0.25 * fade))
    dimmed = light.dimmed(1.0 - 0.65 * fade)
    return replace(dimmed, tint=warm, vignette=dimmed.vignette + 0.2 * fade)


SETUPS: dict[str, Setup] = {
    "passing": Setup("depot", 3, (0, 2), 2, 0.6, 1.0, _steady),
    "clean": Setup("platform", 3, (), 0, 1.0, 1.0, _steady),
    "tunnel": Setup("tunnel", 2, (0, 1), 2, 0.5, 0.55, _tunnel_entry),
}


def _base_light(rng: np.random.Generator) -> lighting.Lighting:
    """A well-exposed camera: videos vary light over time instead of between shots."""
    light = lighting.random_lighting(rng)
    return replace(light, brightness=float(rng.uniform(0.85, 1.15)), gamma=1.0, noise=2.0, blur=1)


def _noise(rng: np.random.Generator, width: int, height: int) -> list[np.ndarray]:
    return [rng.standard_normal((height, width), dtype=np.float32) for _ in range(NOISE_FIELDS)]


def moving_train(
    name: str,
    seed: int,
    width: int,
    height: int,
    fps: int,
    seconds: float,
    truth: Truth,
    first_id: int = 0,
    every: int = 1,
) -> Iterator[np.ndarray]:
    """A train scrolling right to left past the fixed camera, graffiti painted on beforehand."""
    setup = SETUPS[name]
    layout, train_rng, bg_rng, graf_rng, light_rng = streams(seed, 5, SCENARIOS.index(name) + 1)
    body = int(height * layout.uniform(0.5, 0.6))
    rail_y = int(height * 0.92)
    origin_y = rail_y - strip_height(body)
    strip = build_train(train_rng, body, setup.carriages, setup.distractor_level)
    rgb = strip.rgb.copy()
    marks = []
    for carriage in setup.tagged:
        bx0, _, bx1, _ = strip.bodies[carriage]
        placements = place_graffiti(
            graf_rng, strip, (int(bx0), int(bx1)), setup.per_carriage, first_id + len(marks)
        )
        marks += [paint(strip, rgb, p, 1.0) for p in placements]
    bg = background.render(bg_rng, setup.background, width, height, rail_y)
    light = _base_light(light_rng)
    noise = _noise(light_rng, width, height)
    count = int(round(seconds * fps))
    start, end = 0.55 * width, 0.45 * width - strip.width
    step = (end - start) / (count - 1) * setup.speed
    blur = int(np.clip(abs(step) * 0.5, 1, 9))
    for i in range(count):
        origin_x = int(round(start + step * i))
        seen = [a for m in marks if (a := annotate(m, origin_x, origin_y, width, height))]
        truth.record([a for a in seen if a.visible >= MIN_VISIBLE],
                     [a for a in seen if a.visible < MIN_VISIBLE])
        if i % every:
            continue
        shot = replace(setup.light(light, i / fps * SEGMENT_SECONDS / seconds), blur=blur)
        scene = frame(bg, rgb, strip, origin_x, origin_y)
        yield lighting.apply(scene, shot, noise[i % NOISE_FIELDS])


def spraying(
    seed: int, width: int, height: int, fps: int, seconds: float, truth: Truth,
    first_id: int = 0, every: int = 1,
) -> Iterator[np.ndarray]:
    """A parked carriage: a tag is sprayed stroke by stroke, then a blob.

    On the 15 s timeline the tag grows from 2 s to 8 s and the blob from 10 s to 11.5 s;
    shorter videos compress the same timeline.
    """
    salt = SCENARIOS.index("spraying") + 1
    layout, train_rng, bg_rng, graf_rng, light_rng = streams(seed, 5, salt)
    body = int(height * layout.uniform(0.55, 0.65))
    rail_y = int(height * 0.93)
    origin_y = rail_y - strip_height(body)
    strip = build_train(train_rng, body, 2, 0.5)
    bx0, _, bx1, _ = strip.bodies[0]
    origin_x = -int(bx0 + (bx1 - bx0 - width) * layout.uniform(0.3, 0.7))
    window = (-origin_x + width // 4, -origin_x + 3 * width // 4)
    tag = place_graffiti(graf_rng, strip, window, 1, first_id, kinds=("tag",))
    blob = place_graffiti(
        graf_rng, strip, (-origin_x + 50, -origin_x + width // 3), 1, first_id + 1, kinds=("blob",)
    )
    k = seconds / SEGMENT_SECONDS
    schedule: list[tuple[Placement, float, float]] = [(p, 2.0 * k, 8.0 * k) for p in tag]
    schedule += [(p, 10.0 * k, 11.5 * k) for p in blob if not _clash(p, tag)]
    bg = background.render(bg_rng, str(layout.choice(["depot", "platform"])), width, height, rail_y)
    light = _base_light(light_rng)
    noise = _noise(light_rng, width, height)
    for i in range(int(round(seconds * fps))):
        t = i / fps
        rgb = strip.rgb.copy()
        objects = []
        for placement, t0, t1 in schedule:
            if t < t0:
                continue
            mark = paint(strip, rgb, placement, (t - t0 + 1 / fps) / (t1 - t0))
            ann = annotate(mark, origin_x, origin_y, width, height)
            if ann is not None:
                objects.append(ann)
        truth.record(objects)
        if i % every:
            continue
        scene = frame(bg, rgb, strip, origin_x, origin_y)
        yield lighting.apply(scene, light, noise[i % NOISE_FIELDS])


def _clash(p: Placement, others: list[Placement]) -> bool:
    return any(
        abs(p.x - o.x) < o.spec.height * o.spec.letters and abs(p.y - o.y) < o.spec.height
        for o in others
    )


def generate(
    scenario: str,
    seed: int,
    width: int = 1280,
    height: int = 720,
    fps: int = 25,
    seconds: float = SEGMENT_SECONDS,
    every: int = 1,
    workers: int = 1,
) -> tuple[Iterator[np.ndarray], Truth]:
    """Frames of ``scenario`` (lazily) and the ground truth they fill in as they are drawn.

    ``seconds`` is the length of one scenario; the demo is :data:`DEMO_PARTS` back to back
    (5 x 15 s), each from its own seed derived from ``seed``, with appearance ids kept unique
    across segments. ``every`` > 1 renders only every n-th frame of each segment (training
    takes a few frames per video) while the truth still covers every frame. ``workers`` > 1
    renders that many segments at once in child processes (:class:`_Parts`); a segment
    depends only on its own seed, so the frames and the truth are the very same.
    """
    truth = Truth(scenario, seed, width, height, fps)
    parts = DEMO_PARTS if scenario == "demo" else (scenario,)
    jobs = [(name, seed * 10 + k if scenario == "demo" else seed, 100 * k)
            for k, name in enumerate(parts)]

    def render(name: str, part_seed: int, first_id: int, into: Truth) -> Iterator[np.ndarray]:
        draw = spraying if name == "spraying" else partial(moving_train, name)
        return draw(part_seed, width, height, fps, seconds, into, first_id, every)

    def frames() -> Iterator[np.ndarray]:
        rendered = (_in_children(jobs, render, workers, Truth(scenario, seed, width, height, fps))
                    if workers > 1 and len(jobs) > 1 else (render(*job, truth) for job in jobs))
        for (name, part_seed, _), images in zip(jobs, rendered, strict=True):
            first = len(truth.frames)
            part = yield from images
            if part is not None:  # drawn in a child, into a truth of its own
                truth.frames += part.frames
                truth.unlabelled += part.unlabelled
                for appearance, kind in part.kinds.items():
                    truth.kinds.setdefault(appearance, kind)
            truth.segments.append(
                {
                    "scenario": name,
                    "seed": part_seed,
                    "first_frame": first,
                    "last_frame": len(truth.frames) - 1,
                }
            )

    return frames(), truth


#: Frames a rendering child may be ahead of the encoder (about 2.7 MB each at 720p).
AHEAD_FRAMES = 16
Job = tuple[str, int, int]  # segment name, its seed, its first appearance id
Render = Callable[[str, int, int, Truth], Iterator[np.ndarray]]


def _in_children(jobs: list[Job], render: Render, workers: int,
                 blank: Truth) -> Iterator[Generator[np.ndarray, None, Truth]]:
    """Segments drawn in ``workers`` child processes at once, handed over in order.

    Each child draws one segment into a truth of its own (a copy of ``blank``) and sends its
    frames through a bounded queue, then that truth, which ends the segment's generator. The
    next child starts as soon as one ends, so while the consumer (the encoder) works through
    one segment the next ones are being drawn. A child that dies is an error naming its
    segment, never a wait for ever."""
    context = multiprocessing.get_context("fork")
    queues = [context.Queue(AHEAD_FRAMES) for _ in jobs]

    def child(job: Job, out: Any) -> None:
        part = replace(blank, scenario=job[0], seed=job[1])
        for image in render(*job, part):
            out.put(image)
        out.put(part)

    children = [context.Process(target=child, args=pair, daemon=True)
                for pair in zip(jobs, queues, strict=True)]
    for each in children[:workers]:
        each.start()

    def segment(k: int) -> Generator[np.ndarray, None, Truth]:
        while True:
            try:
                item = queues[k].get(timeout=1.0)
            except queue.Empty:
                if not children[k].is_alive():
                    raise RuntimeError(f"drawing segment {jobs[k][0]} (seed {jobs[k][1]}) "
                                       f"failed: exit code {children[k].exitcode}") from None
                continue
            if isinstance(item, Truth):
                if k + workers < len(children):
                    children[k + workers].start()
                return item
            yield item

    try:
        for k in range(len(jobs)):
            yield segment(k)
    finally:
        for each in children:
            if each.is_alive():
                each.kill()
