"""The event trigger on its own: made-up sample times, no threads, no video."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from camera_module.trigger import (
    Action,
    Detection,
    EventEnded,
    EventStarted,
    PartSplit,
    Trigger,
    counts,
    inside,
)
from config.camera import RecordingSettings, TriggerSettings

TAG = Detection("graffiti", 0, 0.9, (0.6, 0.3, 0.8, 0.6))
STEP = 0.2  # 5 samples per second


def make(trigger: dict | None = None, recording: dict | None = None) -> Trigger:
    ids = iter(f"ev{i}" for i in range(1, 100))
    return Trigger(TriggerSettings(**{"cooldown_s": 0, **(trigger or {})}),
                   RecordingSettings(**{"pre_roll_s": 2, "post_roll_s": 1, **(recording or {})}),
                   lambda t: next(ids))


def run(trigger: Trigger, start: float, end: float,
        detections: Iterable[Detection] = (TAG,)) -> list[Action]:
    """Feed samples every STEP seconds from ``start`` (inclusive) to ``end`` (exclusive)."""
    actions: list[Action] = []
    t = start
    while t < end - 1e-9:
        actions += trigger.observe(round(t, 6), list(detections))
        t += STEP
    return actions


def test_three_of_five_confirms_at_the_third_hit_and_clip_starts_pre_roll_before_first() -> None:
    trigger = make({"confirm_window": 5, "confirm_hits": 3})
    actions = run(trigger, 10.0, 10.6)
    assert actions == [EventStarted("ev1", 10.4, 8.0)]
    assert trigger.active == "ev1"


def test_a_single_noisy_frame_starts_nothing() -> None:
    trigger = make({"confirm_window": 5, "confirm_hits": 2})
    assert run(trigger, 0.0, 0.2) == []
    assert run(trigger, 0.2, 3.0, detections=()) == []
    assert trigger.active is None


def test_event_ends_post_roll_after_the_last_confirmation_then_cooldown_blocks() -> None:
    trigger = make({"confirm_window": 3, "confirm_hits": 2, "cooldown_s": 5},
                   {"post_roll_s": 1.0})
    started = run(trigger, 0.0, 2.0)
    assert [type(a) for a in started] == [EventStarted]
    ended = run(trigger, 2.0, 3.4, detections=())
    assert ended == [EventEnded("ev1", pytest.approx(2.8), 1, pytest.approx(1.8))]
    assert run(trigger, 3.4, 7.6) == []  # the parked tag is back within the cooldown
    again = run(trigger, 7.8, 8.4)
    assert [a.event_id for a in again if isinstance(a, EventStarted)] == ["ev2"]


def test_tick_ends_an_event_when_no_samples_arrive() -> None:
    trigger = make({"confirm_window": 2, "confirm_hits": 2}, {"post_roll_s": 3})
    run(trigger, 0.0, 0.4)
    assert trigger.tick(3.0) == []
    assert trigger.tick(3.3) == [EventEnded("ev1", pytest.approx(3.2), 1, pytest.approx(0.2))]


def test_long_event_is_cut_into_parts_sharing_the_event_id() -> None:
    trigger = make({"confirm_window": 1, "confirm_hits": 1},
                   {"pre_roll_s": 2, "post_roll_s": 1, "max_clip_s": 5})
    actions = run(trigger, 0.0, 12.0) + trigger.tick(20.0)
    kinds = [(type(a).__name__, getattr(a, "part", None)) for a in actions]
    assert kinds == [("EventStarted", None), ("PartSplit", 2), ("PartSplit", 3),
                     ("EventEnded", 3)]
    splits = [a.t for a in actions if isinstance(a, PartSplit)]
    assert splits == [pytest.approx(3.0), pytest.approx(8.0)]  # clip_from -2, every 5 s
    assert {a.event_id for a in actions} == {"ev1"}


def test_median_mode_needs_a_full_window_above_the_median_score() -> None:
    trigger = make({"confirm_mode": "median", "confirm_window": 5,
                    "confirm_median_score": 0.7, "min_score": 0.3, "confirm_hits": 1})
    weak = Detection("graffiti", 0, 0.5, TAG.box)
    assert run(trigger, 0.0, 2.0, detections=[weak]) == []
    started = run(trigger, 2.0, 3.0)
    assert [type(a) for a in started] == [EventStarted]
    assert started[0].t == pytest.approx(2.4)  # the third strong sample makes the median 0.9


def test_threshold_change_applies_to_the_next_sample() -> None:
    trigger = make({"confirm_window": 1, "confirm_hits": 1, "min_score": 0.95})
    assert run(trigger, 0.0, 1.0) == []
    trigger.configure(TriggerSettings(confirm_window=1, confirm_hits=1, min_score=0.8),
                      trigger.rec)
    assert [type(a) for a in run(trigger, 1.0, 1.2)] == [EventStarted]


@pytest.mark.parametrize(("change", "expected"), [
    ({}, True),
    ({"labels": ["sticker"]}, False),
    ({"labels": []}, True),
    ({"min_score": 0.95}, False),
    ({"label_min_score": {"graffiti": 0.95}}, False),
    ({"label_min_score": {"sticker": 0.95}}, True),
    ({"min_box_area": 0.07}, False),
    ({"max_box_area": 0.05}, False),
    ({"include_zones": [[[0.5, 0.0], [1.0, 0.0], [1.0, 1.0], [0.5, 1.0]]]}, True),
    ({"include_zones": [[[0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [0.0, 1.0]]]}, False),
    ({"exclude_zones": [[[0.5, 0.0], [1.0, 0.0], [1.0, 1.0], [0.5, 1.0]]]}, False),
    ({"exclude_zones": [[[0.0, 0.0], [0.5, 0.0], [0.5, 1.0], [0.0, 1.0]]]}, True),
])
def test_which_detections_count(change: dict, expected: bool) -> None:
    # TAG: area 0.2 x 0.3 = 0.06, centre (0.7, 0.45)
    assert counts(TAG, TriggerSettings(**change)) is expected


def test_point_in_polygon_handles_concave_shapes() -> None:
    u_shape = [(0, 0), (1, 0), (1, 1), (0.7, 1), (0.7, 0.3), (0.3, 0.3), (0.3, 1), (0, 1)]
    assert inside((0.1, 0.5), u_shape)
    assert not inside((0.5, 0.6), u_shape)
    assert inside((0.5, 0.1), u_shape)


def test_what_wakes_an_idle_camera_is_what_could_start_an_event_and_a_little_less() -> None:
    left_third = [[0, 0], [0.3, 0], [0.3, 1], [0, 1]]
    trigger = make({"min_score": 0.6, "label_min_score": {"graffiti": 0.2},
                    "labels": ["graffiti", "tag"], "exclude_zones": [left_third]})
    faint = Detection("tag", 0, 0.35, (0.6, 0.3, 0.8, 0.6))
    assert trigger.stirred([faint], 0.3) and not trigger.stirred([faint], 0.4)
    graffiti = Detection("graffiti", 0, 0.25, (0.6, 0.3, 0.8, 0.6))
    assert trigger.stirred([graffiti], 0.3), "the wake score is lowered to the label's threshold"
    excluded = Detection("tag", 0, 0.9, (0.0, 0.0, 0.1, 0.9))
    person = Detection("person", 0, 0.9, (0.6, 0.3, 0.8, 0.6))
    assert not trigger.stirred([excluded, person], 0.3), "zones and labels apply as for events"
    assert not trigger.counting([faint])
    run(trigger, 0, 1, [Detection("graffiti", 0, 0.9, (0.6, 0.3, 0.8, 0.6))])
    assert trigger.active and trigger.stirred([], 0.3), "an event under way keeps it awake"
