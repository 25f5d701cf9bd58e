"""Picking frames for the detector: a few per second, and always the newest.

The decoder offers every frame; :class:`Sampler` keeps one every ``1/detect_fps`` seconds of
stream time and puts it into a :class:`LatestSlot`, a single-slot handoff to the detect
worker. When the worker (the detector) is slower than the sampling rate the slot's older
sample is replaced and counted as skipped, so the module always works on the present and
memory never grows with a backlog. Only sampled frames are ever converted to pixels.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import av


@dataclass(frozen=True)
class Sample:
    """One frame chosen for detection.

    ``t`` is the module's monotonic clock for the frame (stream time, anchored), ``stream_s``
    the stream's own timestamp in seconds, ``wall`` the UTC time it shows, ``arrived`` when
    its packet arrived (capture-to-decision latency is measured from here)."""

    frame: av.VideoFrame
    t: float
    stream_s: float
    wall: datetime
    arrived: float


class WallClock:
    """Maps the monotonic clock to UTC, fixed at start so clip times never jump with NTP."""

    def __init__(self, mono: float, utc: datetime | None = None) -> None:
        self._mono = mono
        self._utc = utc or datetime.now(UTC)

    @property
    def anchor(self) -> tuple[float, datetime]:
        """The monotonic time and the UTC time it stands for: enough to rebuild this clock
        in another process (a recording recovered after a crash keeps its own times)."""
        return self._mono, self._utc

    def utc(self, t: float) -> datetime:
        return self._utc + timedelta(seconds=t - self._mono)


class LatestSlot:
    """A one-place mailbox: ``put`` replaces, ``take`` empties. Counts what was replaced."""

    def __init__(self) -> None:
        self._item: Sample | None = None
        self._cond = threading.Condition()
        self.put_count = 0
        self.skipped = 0

    def put(self, sample: Sample) -> None:
        with self._cond:
            if self._item is not None:
                self.skipped += 1
            self._item = sample
            self.put_count += 1
            self._cond.notify()

    def take(self, timeout_s: float) -> Sample | None:
        with self._cond:
            if self._item is None:
                self._cond.wait(timeout_s)
            item, self._item = self._item, None
            return item

    @property
    def depth(self) -> int:
        """0 or 1: the proof that nothing queues up."""
        return 0 if self._item is None else 1


class Sampler:
    """Chooses frames at ``fps()`` per second of stream time (read live from settings)."""

    def __init__(self, fps: Callable[[], float], slot: LatestSlot, clock: WallClock) -> None:
        self._fps = fps
        self._slot = slot
        self._clock = clock
        self._next_due: float | None = None

    def offer(self, frame: av.VideoFrame, t: float, arrived: float) -> None:
        period = 1.0 / self._fps()
        if self._next_due is not None and t < self._next_due - 1.0:
            self._next_due = None  # time went backwards: a new session
        if self._next_due is not None and t < self._next_due:
            return
        base = t if self._next_due is None else self._next_due
        self._next_due = base + period if base + period > t else t + period
        stream_s = float(frame.time) if frame.time is not None else t
        self._slot.put(Sample(frame, t, stream_s, self._clock.utc(t), arrived))
