"""The clip list: filters, newest-first order and continuation-token pages over the blob layout.

Blob listing only goes in name order, and names are ``<train>/<camera>/<YYYY>/<MM>/<DD>/...``,
so the catalog first lists the folder tree (trains, cameras, years, months, days; narrowed by
the train, camera and date filters, and cached for ``index_ttl_s``), then lists the blobs of
one day at a time, newest day first, with their metadata. Within a day clips are grouped by
train and camera, newest first. Nothing else is read: score, labels, start time and the review
state all travel as blob metadata, so a page costs a few list calls however many clips the
container holds. A page's continuation token is the day and the last clip it showed.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from contracts.blob_layout import (
    REVIEW_SUFFIX,
    BadClipId,
    ClipId,
    Meta,
    check_segment,
    is_segment,
    parse,
    split_blob,
)
from contracts.clip import SIDECAR_SUFFIX, THUMBNAIL_SUFFIX, VIDEO_SUFFIX
from viewer.store import Entry, Missing, Store
from viewer.summary import ClipSummary, sort_key, summarize

REVIEW_STATES = ("confirmed", "false_positive", "cleaned")
UNREVIEWED = "unreviewed"
STATE_FILTERS = (UNREVIEWED, "reviewed", *REVIEW_STATES)
_DAY = re.compile(r"^\d{4}/\d{2}/\d{2}$", re.ASCII)
_YEAR = re.compile(r"^\d{4}$", re.ASCII)
_TWO = re.compile(r"^\d{2}$", re.ASCII)


@dataclass(frozen=True)
class Filters:
    """What the operator narrowed the list to; None means no restriction."""

    train: str | None = None
    camera: str | None = None
    # Not a folder of the layout: matched on the clips' metadata, like the score and the state.
    carriage: str | None = None
    day_from: date | None = None
    day_to: date | None = None
    min_score: float | None = None
    state: str | None = None

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> Filters:
        """Filters from URL query parameters; :class:`BadClipId` for a value out of range."""
        def text(key: str) -> str | None:
            value = query.get(key, "").strip()
            return value or None

        def day(key: str) -> date | None:
            value = text(key)
            if value is None:
                return None
            try:
                return date.fromisoformat(value)
            except ValueError:
                raise BadClipId(f"{key} must be a date YYYY-MM-DD, not {value!r}") from None

        train, camera, carriage = text("train"), text("camera"), text("carriage")
        score = text("min_score")
        try:
            min_score = None if score is None else float(score)
        except ValueError:
            raise BadClipId(f"min_score must be a number, not {score!r}") from None
        if min_score is not None and not 0 <= min_score <= 1:
            raise BadClipId("min_score must be between 0 and 1")
        state = text("state")
        if state is not None and state not in STATE_FILTERS:
            raise BadClipId(f"state must be one of {', '.join(STATE_FILTERS)}")
        return cls(train=train and check_segment(train, "train"),
                   camera=camera and check_segment(camera, "camera"),
                   carriage=carriage and check_segment(carriage, "carriage"),
                   day_from=day("from"), day_to=day("to"), min_score=min_score, state=state)

    def day_in_range(self, day: str) -> bool:
        """Whether a ``YYYY/MM/DD`` folder (or its ``YYYY`` / ``YYYY/MM`` parent) can hold
        clips in the date range."""
        parts = day.split("/")
        lo = self.day_from.isoformat().replace("-", "/") if self.day_from else None
        hi = self.day_to.isoformat().replace("-", "/") if self.day_to else None
        width = len("/".join(parts))
        return ((lo is None or day >= lo[:width]) and (hi is None or day <= hi[:width]))

    def keeps(self, clip: ClipSummary) -> bool:
        """Whether the clip passes; one whose score is unreadable never passes a minimum,
        one without a carriage never passes a carriage filter."""
        if self.carriage is not None and clip.carriage != self.carriage:
            return False
        if self.min_score is not None and (clip.max_score is None
                                           or clip.max_score < self.min_score):
            return False
        if self.state is None:
            return True
        if self.state == "reviewed":
            return clip.review_state != UNREVIEWED
        return clip.review_state == self.state


def assemble(entries: list[Entry]) -> list[ClipSummary]:
    """Clips from the blobs of one prefix: complete clips (video and sidecar) only. Blob
    names outside the layout are ignored; metadata is read as untrusted
    (:func:`viewer.summary.summarize`)."""
    parts: dict[ClipId, dict[str, Entry]] = {}
    for entry in entries:
        found = split_blob(entry.name)
        if found is not None:
            parts.setdefault(found[0], {})[found[1]] = entry
    clips = []
    for clip, blobs in parts.items():
        video, sidecar = blobs.get(VIDEO_SUFFIX), blobs.get(SIDECAR_SUFFIX)
        if video is None or sidecar is None:
            continue  # still uploading (the sidecar goes last) or not a clip
        review = blobs.get(REVIEW_SUFFIX)
        state = UNREVIEWED
        if review is not None:
            state = review.metadata.get(Meta.REVIEW_STATE, "")
            state = state if state in REVIEW_STATES else UNREVIEWED
        clips.append(summarize(clip, sidecar.metadata or video.metadata, review_state=state,
                               review_etag=review.etag if review else None,
                               thumbnail=THUMBNAIL_SUFFIX in blobs, video_bytes=video.size))
    return clips


def encode_cursor(day: str, after: ClipId) -> str:
    raw = json.dumps({"v": 1, "day": day, "after": str(after)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(token: str) -> tuple[str, ClipId]:
    """(day, last clip shown) from a continuation token; :class:`BadClipId` if it is not one."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        doc = json.loads(raw)
        day, after = doc["day"], parse(doc["after"])
    except (binascii.Error, ValueError, KeyError, TypeError, RecursionError):
        raise BadClipId("cursor is not a continuation token from this viewer") from None
    if not isinstance(day, str) or not _DAY.match(day) or after.day != day:
        raise BadClipId("cursor is not a continuation token from this viewer")
    return day, after


@dataclass
class Page:
    clips: list[ClipSummary]
    next: str | None

    def to_json(self) -> dict[str, Any]:
        return {"clips": [c.to_json() for c in self.clips], "next": self.next}


@dataclass
class _Cached:
    at: float
    names: list[str] = field(default_factory=list)


class Catalog:
    """Lists clips on a :class:`~viewer.store.Store`."""

    def __init__(self, store: Store, ttl_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self.ttl_s = ttl_s
        self._clock = clock
        self._folders: dict[str, _Cached] = {}

    async def _sub(self, prefix: str) -> list[str]:
        """Folder names (last segment only) under ``prefix``, cached for ``ttl_s``."""
        now = self._clock()
        cached = self._folders.get(prefix)
        if cached is None or now - cached.at > self.ttl_s:
            names = [f[len(prefix):].rstrip("/") for f in await self.store.folders(prefix)]
            cached = self._folders[prefix] = _Cached(now, names)
        return cached.names

    async def days(self, filters: Filters) -> dict[str, list[tuple[str, str]]]:
        """Day folder -> the (train, camera) pairs that have it, in the filters' range."""
        # Folder names come from storage: only those the layout allows are walked into.
        trains = [filters.train] if filters.train else [
            t for t in await self._sub("") if is_segment(t)]
        pairs: list[tuple[str, str]] = []
        for train in trains:
            cameras = [filters.camera] if filters.camera else [
                c for c in await self._sub(f"{train}/") if is_segment(c)]
            pairs += [(train, camera) for camera in cameras]

        async def walk(train: str, camera: str) -> list[str]:
            base = f"{train}/{camera}/"
            found = []
            for year in await self._sub(base):
                if not (_YEAR.match(year) and filters.day_in_range(year)):
                    continue
                for month in await self._sub(f"{base}{year}/"):
                    if not (_TWO.match(month) and filters.day_in_range(f"{year}/{month}")):
                        continue
                    found += [f"{year}/{month}/{d}" for d in await self._sub(
                        f"{base}{year}/{month}/") if filters.day_in_range(f"{year}/{month}/{d}")]
            return [d for d in found if _DAY.match(d)]

        walked = await asyncio.gather(*(walk(t, c) for t, c in pairs))
        days: dict[str, list[tuple[str, str]]] = {}
        for pair, found in zip(pairs, walked, strict=True):
            for day in found:
                days.setdefault(day, []).append(pair)
        return days

    async def _day(self, day: str, pairs: list[tuple[str, str]],
                   filters: Filters) -> list[ClipSummary]:
        listed = await asyncio.gather(*(self.store.entries(f"{t}/{c}/{day}/") for t, c in pairs))
        clips = [c for entries in listed for c in assemble(entries) if filters.keeps(c)]
        return sorted(clips, key=ClipSummary.sort_key)

    async def page(self, filters: Filters, limit: int, cursor: str | None = None) -> Page:
        """Up to ``limit`` clips after ``cursor``; ``next`` is None when nothing follows."""
        start_day, after = decode_cursor(cursor) if cursor else (None, None)
        days = await self.days(filters)
        order = sorted((d for d in days if start_day is None or d <= start_day), reverse=True)
        taken: list[ClipSummary] = []
        for index, day in enumerate(order):
            clips = await self._day(day, days[day], filters)
            if after is not None and day == start_day:
                clips = [c for c in clips if c.sort_key() > sort_key(after)]
            room = limit - len(taken)
            taken += clips[:room]
            if len(taken) >= limit:
                more = len(clips) > room or index + 1 < len(order)
                last = taken[-1].id
                return Page(taken, encode_cursor(last.day, last) if more else None)
        return Page(taken, None)

    async def all(self, filters: Filters) -> AsyncIterator[ClipSummary]:
        """Every clip the filters keep, in list order (for the export)."""
        days = await self.days(filters)
        for day in sorted(days, reverse=True):
            for clip in await self._day(day, days[day], filters):
                yield clip

    async def clip(self, clip: ClipId) -> ClipSummary:
        """One clip by id; :class:`~viewer.store.Missing` if it is not (completely) there."""
        entries = await self.store.entries(str(clip))
        found = [c for c in assemble(entries) if c.id == clip]
        if not found:
            raise Missing(f"no clip {clip}")
        return found[0]
