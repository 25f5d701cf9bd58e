"""What a run over a video with ground truth should have produced, and what it did produce.

A *sighting* is graffiti on screen without a break as long as the camera's post-roll: the
appearances of one passing train, or a tag being sprayed and then parked, are one sighting,
because the camera keeps one event going through gaps shorter than its post-roll. Every
sighting must give exactly one event whose clip covers it with pre- and post-roll; an event
that matches no sighting is a false alarm. Times here are seconds from the start of the video
pass, so the same code scores the end-to-end test and the benchmark.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from contracts.messages import ClipUploaded, ClipWritten, EventStarted
from local_run.outputs import OutputLine, typed


@dataclass(frozen=True)
class Sighting:
    first_s: float
    last_s: float
    appearances: tuple[int, ...]


@dataclass
class Event:
    """One event as the module outputs tell it, in seconds from the start of the pass."""

    event_id: str
    confirmed_s: float
    clips: list[tuple[float, float]] = field(default_factory=list)  # (start, end) per part
    stems: list[str] = field(default_factory=list)
    uploaded_s: float | None = None  # when the last part reached blob storage


@dataclass
class Score:
    sightings: list[Sighting]
    matched: dict[int, str]  # sighting index -> event id
    problems: list[str]


def sightings(truth: dict[str, Any], join_gap_s: float) -> list[Sighting]:
    """The ground truth's appearances merged into sightings (see the module docstring)."""
    spans = sorted((float(a["first_time_s"]), float(a["last_time_s"]), int(a["id"]))
                   for a in truth["appearances"])
    merged: list[Sighting] = []
    for first, last, aid in spans:
        if merged and first - merged[-1].last_s < join_gap_s:
            prev = merged[-1]
            merged[-1] = Sighting(prev.first_s, max(prev.last_s, last), (*prev.appearances, aid))
        else:
            merged.append(Sighting(first, last, (aid,)))
    return merged


def seconds_since(when: datetime, epoch: float) -> float:
    """A time as seconds from the start of the pass (Unix time ``epoch``)."""
    return when.timestamp() - epoch


def events_from_messages(camera_events: Iterable[OutputLine], uploads: Iterable[OutputLine],
                         epoch: float) -> list[Event]:
    """Events from the camera's ``events`` and the uploader's ``clips`` output lines."""

    def at(when: datetime) -> float:
        return seconds_since(when, epoch)

    events: dict[str, Event] = {}
    for sent in typed(camera_events):
        match sent.message:
            case EventStarted() as started:
                events[started.event_id] = Event(started.event_id, at(started.start_utc))
            case ClipWritten() as clip if clip.event_id in events:
                found = events[clip.event_id]
                found.clips.append((at(clip.start_utc), at(clip.end_utc)))
                found.stems.append(clip.stem)
    for sent in typed(uploads):
        if isinstance(sent.message, ClipUploaded) and sent.message.event_id in events:
            found = events[sent.message.event_id]
            found.uploaded_s = max(found.uploaded_s or at(sent.ts), at(sent.ts))
    return sorted(events.values(), key=lambda e: e.confirmed_s)


def score(truth_sightings: list[Sighting], events: list[Event], *, pre_roll_s: float,
          post_roll_s: float, tolerance_s: float, camera_off_s: float = math.inf) -> Score:
    """Match events to sightings; every broken expectation is one line in ``problems``.

    ``camera_off_s``: when the camera was switched off; no clip can reach past it."""
    problems: list[str] = []
    matched: dict[int, str] = {}
    claimed: set[str] = set()
    for index, sighting in enumerate(truth_sightings):
        label = f"sighting {sighting.first_s:.1f}-{sighting.last_s:.1f} s"
        hits = [e for e in events
                if sighting.first_s - tolerance_s <= e.confirmed_s
                <= sighting.last_s + tolerance_s]
        if not hits:
            problems.append(f"{label}: no event")
            continue
        if len(hits) > 1:
            problems.append(f"{label}: {len(hits)} events "
                            f"({', '.join(e.event_id for e in hits)})")
        event = hits[0]
        matched[index] = event.event_id
        claimed.update(e.event_id for e in hits)
        if not event.clips:
            problems.append(f"{label}: event {event.event_id} wrote no clip")
            continue
        start = min(s for s, _ in event.clips)
        end = max(e for _, e in event.clips)
        want_start = sighting.first_s - pre_roll_s + tolerance_s
        want_end = min(sighting.last_s + post_roll_s, camera_off_s) - tolerance_s
        if start > want_start or end < want_end:
            problems.append(f"{label}: clip {start:.1f}-{end:.1f} s does not cover "
                            f"{want_start:.1f}-{want_end:.1f} s (pre/post-roll)")
    for event in events:
        if event.event_id not in claimed:
            problems.append(f"event {event.event_id} at {event.confirmed_s:.1f} s matches no "
                            "sighting (a false alarm)")
    return Score(truth_sightings, matched, problems)
