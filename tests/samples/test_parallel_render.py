"""The demo video's segments drawn in child processes are the very frames and truth of the
sequential drawing, and a child that dies is an error naming its segment, not a hang."""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pytest

from samples.world.video import Truth, _in_children, generate


def test_drawing_in_children_gives_the_same_frames_and_truth() -> None:
    args = ("demo", 3, 96, 64, 5)
    serial_frames, serial_truth = generate(*args, seconds=2.0)
    expected = list(serial_frames)
    frames, truth = generate(*args, seconds=2.0, workers=2)
    got = list(frames)
    assert len(got) == len(expected) == 5 * 10
    assert all(np.array_equal(a, b) for a, b in zip(got, expected, strict=True))
    assert json.dumps(truth.to_json()) == json.dumps(serial_truth.to_json())
    assert [s["first_frame"] for s in truth.segments] == [0, 10, 20, 30, 40]


def test_a_child_that_dies_names_its_segment() -> None:
    def render(name: str, seed: int, first_id: int, into: Truth) -> Iterator[np.ndarray]:
        if name == "broken":
            raise SystemExit(3)
        yield np.zeros((2, 2, 3), np.uint8)

    jobs = [("fine", 1, 0), ("broken", 2, 100)]
    segments = _in_children(jobs, render, 2, Truth("demo", 0, 2, 2, 5))
    assert len(list(next(segments))) == 1
    with pytest.raises(RuntimeError, match=r"drawing segment broken \(seed 2\) failed: exit "
                       r"code 3"):
        list(next(segments))
