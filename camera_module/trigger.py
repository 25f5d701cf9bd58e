"""When detections become an event: a pure state machine, driven by sample times.

No threads, no I/O, no clock of its own: :meth:`Trigger.observe` takes one sampled frame's
detections with its time and :meth:`Trigger.tick` lets time pass without a sample (the
detector may be down), and both return what happened. That keeps every rule unit-testable
with made-up times, and the same code runs live with the module's monotonic clock.

The rules, all from the twin and changeable at any time through :meth:`Trigger.configure`:

- a detection *counts* when its label is of interest, its score reaches the label's minimum,
  its box area lies within the limits and its centre is inside an include zone (if any) and
  outside every exclude zone;
- a sample is a *hit* when at least one detection counts; its score is the best one;
- the event is *confirmed* at a hit when the rule over the last ``confirm_window`` samples
  holds (``n_of_m``: enough hits; ``median``: the median score is high enough), so one noisy
  frame starts nothing;
- an event runs while confirmations continue and ends ``post_roll_s`` after the last one;
  ``cooldown_s`` after its end no new event starts; a part longer than ``max_clip_s`` is cut
  and the next part (same event id, part number + 1) starts where it was cut.
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from config.camera import RecordingSettings, TriggerSettings
from contracts.detection import Detection


@dataclass(frozen=True)
class EventStarted:
    event_id: str
    t: float  # when the event was confirmed
    clip_from: float  # where part 1 starts: pre-roll before the first hit that led to it


@dataclass(frozen=True)
class PartSplit:
    event_id: str
    t: float  # the cut: part ``part - 1`` ends here and part ``part`` starts
    part: int


@dataclass(frozen=True)
class EventEnded:
    event_id: str
    t: float  # post_roll_s after the last confirmation
    part: int  # the last part
    last_confirmed: float


Action = EventStarted | PartSplit | EventEnded


def inside(point: tuple[float, float], polygon: Sequence[Sequence[float]]) -> bool:
    """Even-odd ray casting; a point on an edge may go either way, which is fine for zones."""
    x, y = point
    result = False
    j = len(polygon) - 1
    for i in range(len(polygon)):
        xi, yi = polygon[i][0], polygon[i][1]
        xj, yj = polygon[j][0], polygon[j][1]
        if (yi > y) != (yj > y) and x < (xj - xi) * (y - yi) / (yj - yi) + xi:
            result = not result
        j = i
    return result


def counts(detection: Detection, cfg: TriggerSettings, wake_score: float | None = None) -> bool:
    """Whether one detection counts under the thresholds in force; with ``wake_score``,
    whether it is enough to wake an idle camera (the same labels, sizes and zones, and a
    score at or above the lower of ``wake_score`` and the label's threshold)."""
    if cfg.labels and detection.label not in cfg.labels:
        return False
    threshold = cfg.label_min_score.get(detection.label, cfg.min_score)
    if detection.score < (threshold if wake_score is None else min(threshold, wake_score)):
        return False
    if not cfg.min_box_area <= detection.area <= cfg.max_box_area:
        return False
    centre = detection.centre
    if cfg.include_zones and not any(inside(centre, zone) for zone in cfg.include_zones):
        return False
    return not any(inside(centre, zone) for zone in cfg.exclude_zones)


@dataclass
class _Active:
    event_id: str
    started: float
    last_confirmed: float
    part: int
    part_from: float


class Trigger:
    """The event state machine of one camera."""

    def __init__(self, trigger: TriggerSettings, recording: RecordingSettings,
                 new_event_id: Callable[[float], str]) -> None:
        self._new_event_id = new_event_id
        self._window: deque[tuple[float, float]] = deque(maxlen=trigger.confirm_window)
        self._active: _Active | None = None
        self._quiet_until = float("-inf")
        self.configure(trigger, recording)

    def configure(self, trigger: TriggerSettings, recording: RecordingSettings) -> None:
        """Apply new thresholds at once; the recent samples are kept."""
        self.cfg = trigger
        self.rec = recording
        if self._window.maxlen != trigger.confirm_window:
            self._window = deque(self._window, maxlen=trigger.confirm_window)

    @property
    def active(self) -> str | None:
        return self._active.event_id if self._active else None

    @property
    def part(self) -> int:
        return self._active.part if self._active else 0

    def counting(self, detections: Sequence[Detection]) -> list[Detection]:
        return [d for d in detections if counts(d, self.cfg)]

    def stirred(self, detections: Sequence[Detection], wake_score: float) -> bool:
        """Whether an idle camera should wake: an event is under way, or a detection reaches
        the wake threshold."""
        return self._active is not None or any(counts(d, self.cfg, wake_score)
                                               for d in detections)

    def observe(self, t: float, detections: Sequence[Detection]) -> list[Action]:
        """One sampled frame at time ``t`` and everything the detector found in it."""
        actions = self.tick(t)
        best = max((d.score for d in self.counting(detections)), default=0.0)
        self._window.append((t, best))
        if not (best > 0 and self._rule_holds()):
            return actions
        if self._active is not None:
            self._active.last_confirmed = t
        elif t >= self._quiet_until:
            first_hit = next(ts for ts, score in self._window if score > 0)
            clip_from = first_hit - self.rec.pre_roll_s
            self._active = _Active(self._new_event_id(t), t, t, 1, clip_from)
            actions.append(EventStarted(self._active.event_id, t, clip_from))
        return actions

    def tick(self, now: float) -> list[Action]:
        """Let time pass: cut parts that reached ``max_clip_s``, end a quiet event."""
        active = self._active
        if active is None:
            return []
        actions: list[Action] = []
        end = active.last_confirmed + self.rec.post_roll_s
        while min(now, end) - active.part_from > self.rec.max_clip_s:
            active.part_from += self.rec.max_clip_s
            active.part += 1
            actions.append(PartSplit(active.event_id, active.part_from, active.part))
        if now >= end:
            actions.append(EventEnded(active.event_id, end, active.part, active.last_confirmed))
            self._active = None
            self._quiet_until = end + self.cfg.cooldown_s
            self._window.clear()
        return actions

    def _rule_holds(self) -> bool:
        scores = [score for _, score in self._window]
        if self.cfg.confirm_mode == "median":
            return (len(scores) == self.cfg.confirm_window
                    and statistics.median(scores) >= self.cfg.confirm_median_score)
        return sum(1 for s in scores if s > 0) >= self.cfg.confirm_hits
