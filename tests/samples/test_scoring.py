"""The evaluation's definitions on made-up runs: delays, false frames, false events, goals."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from samples.cli import seed_range
from samples.evaluate import Sampled, Span, StillsRun, VideoRun, check_seeds
from samples.product import Found, camera_twin
from samples.scoring import (
    Goals,
    Summary,
    summarise_scenario,
    summarise_stills,
    unmet,
    video_figures,
)
from samples.seeds import HELD_OUT_VIDEOS, stills_of

TAG = np.array([[0.2, 0.2, 0.4, 0.4]])
EDGE = np.array([[0.0, 0.3, 0.05, 0.5]])  # paint under the 25 % rule at the frame edge
DISTRACTOR = np.array([[0.6, 0.6, 0.8, 0.8]])
NONE = np.zeros((0, 4))


def _found(*parts: tuple[np.ndarray, float]) -> Found:
    boxes = np.concatenate([b for b, _ in parts]) if parts else NONE
    return Found(boxes, np.array([s for _, s in parts], np.float64))


def _run(samples: list[Sampled], spans: tuple[Span, ...] = ()) -> VideoRun:
    return VideoRun("passing", HELD_OUT_VIDEOS.start, spans, tuple(samples))


def test_delay_is_from_first_labelled_frame_to_first_detection() -> None:
    samples = [Sampled(t, TAG, (7,), NONE, _found((TAG, 0.9)) if t >= 0.4 else _found())
               for t in np.arange(0, 3, 0.2)]
    figures = video_figures(_run(samples, (Span(7, "tag", 0.0, 2.8),)), 0.5, 0.5, camera_twin())
    assert figures.delays == (0.4,) and figures.long_in_time == 1 and figures.long == 1
    assert figures.false_frames == 0 and figures.false_events == 0


def test_a_detection_below_the_threshold_does_not_count() -> None:
    samples = [Sampled(t, TAG, (7,), NONE, _found((TAG, 0.6))) for t in np.arange(0, 3, 0.2)]
    figures = video_figures(_run(samples, (Span(7, "tag", 0.0, 2.8),)), 0.7, 0.7, camera_twin())
    assert figures.detected == 0 and figures.long_in_time == 0


def test_detections_of_unlabelled_paint_are_not_false() -> None:
    samples = [Sampled(t, NONE, (), EDGE, _found((EDGE, 0.9))) for t in np.arange(0, 3, 0.2)]
    figures = video_figures(_run(samples), 0.5, 0.5, camera_twin())
    assert figures.false_frames == 0 and figures.false_events == 0


def test_false_events_come_from_the_camera_trigger() -> None:
    """The shipped twin confirms 3 of 5 samples: two false frames start nothing, three do,
    and the cooldown keeps a second burst soon after from starting another."""
    twin = camera_twin()
    assert (twin.trigger.confirm_hits, twin.trigger.confirm_window) == (3, 5)

    def burst(times: list[float]) -> list[Sampled]:
        return [Sampled(t, NONE, (), NONE,
                        _found((DISTRACTOR, 0.95)) if round(t, 1) in times else _found())
                for t in np.arange(0, 30, 0.2)]

    assert video_figures(_run(burst([1.0, 1.2])), 0.5, 0.5, twin).false_events == 0
    three = video_figures(_run(burst([1.0, 1.2, 1.4])), 0.5, 0.5, twin)
    assert (three.false_frames, three.false_events) == (3, 1)
    again = burst([1.0, 1.2, 1.4, 5.0, 5.2, 5.4])
    assert video_figures(_run(again), 0.5, 0.5, twin).false_events == 1


def test_goals_name_the_figure_that_misses() -> None:
    samples = [Sampled(t, NONE, (), NONE, _found((DISTRACTOR, 0.9))) for t in np.arange(0, 1, 0.2)]
    clean = summarise_scenario("clean", [video_figures(
        VideoRun("clean", HELD_OUT_VIDEOS.start, (), tuple(samples)), 0.5, 0.5, camera_twin())])
    stills = summarise_stills([StillsRun(1, (TAG,), (_found((TAG, 0.9)),), (False,))], 0.5)
    assert stills.map50 == 1.0 and stills.precision == 1.0 and stills.recall == 1.0
    misses = unmet(Summary("p", (), (1,), 0.5, 0.5, (clean,), stills), Goals())
    assert misses == ["clean: frames with a false detection 1.0000 > 0.01",
                      "clean: 1 false events > 0"]


def test_seeds_outside_the_held_out_range_are_refused() -> None:
    with pytest.raises(ValueError, match="outside the held-out video seeds"):
        check_seeds([9001])
    with pytest.raises(ValueError, match="stills per seed"):
        stills_of(HELD_OUT_VIDEOS.start, 101)
    assert seed_range("2") == [HELD_OUT_VIDEOS.start, HELD_OUT_VIDEOS.start + 1]
    assert seed_range("900000005:900000007") == [900_000_005, 900_000_006]
    with pytest.raises(argparse.ArgumentTypeError, match="neither N nor FIRST:END"):
        seed_range("ten")


def test_stills_of_different_seeds_never_overlap() -> None:
    first, second = stills_of(HELD_OUT_VIDEOS.start, 100), stills_of(HELD_OUT_VIDEOS.start + 1, 1)
    assert first.stop == second.start
