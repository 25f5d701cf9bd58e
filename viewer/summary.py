"""What storage says about a clip, read as untrusted: its metadata (the list), its sidecar.

The metadata comes from whoever could write to the container: normally the uploader, but a
hand-made blob, an older or newer uploader, or a damaged upload can carry anything (``nan``
as a score, no metadata at all, a naive time beside an aware one). Each value is checked
here, once; a value that fails is left out (``None``) and the reason is added to the clip's
``problems``, so the clip is shown as unreadable and every other clip of the list still
works. Nothing that leaves this module is a non-finite number or an unchecked identifier.
A sidecar is read with a size bound and validated by the clip contract before anyone uses it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import ValidationError

from contracts.blob_layout import ClipId, Meta, split_labels
from contracts.clip import SIDECAR_SUFFIX, ClipSidecar
from contracts.identifiers import EVENT_ID_MAX, NAME_MAX, BadIdentifier, check_identifier
from viewer.store import Store, TooLarge

MAX_LABELS = 32
MAX_LABEL_CHARS = 64
MAX_SIDECAR_BYTES = 4 * 1024 * 1024
T = TypeVar("T")


@dataclass
class ClipSummary:
    """One clip as the list shows it, from blob metadata only."""

    id: ClipId
    start_utc: str | None
    max_score: float | None
    labels: list[str]
    event_id: str
    part: int
    model_version: str
    duration_s: float | None
    review_state: str
    review_etag: str | None
    thumbnail: bool
    video_bytes: int
    interrupted: bool = False
    # Where the camera is on the train; None for clips from before sidecar schema 3.
    carriage: str | None = None
    position: str | None = None
    problems: list[str] = field(default_factory=list)

    def sort_key(self) -> tuple[str, str, str, int, str]:
        """Newest day first, then train, camera, newest time first within them."""
        return sort_key(self.id)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": str(self.id), "train": self.id.train, "camera": self.id.camera,
            "day": self.id.iso_day, "start_utc": self.start_utc, "duration_s": self.duration_s,
            "max_score": self.max_score, "labels": self.labels, "event_id": self.event_id,
            "part": self.part, "model_version": self.model_version,
            "review_state": self.review_state, "review_etag": self.review_etag,
            "thumbnail": self.thumbnail, "video_bytes": self.video_bytes,
            "interrupted": self.interrupted, "carriage": self.carriage,
            "position": self.position, "unreadable": bool(self.problems),
            "problems": self.problems,
        }


def sort_key(clip: ClipId) -> tuple[str, str, str, int, str]:
    # Day order is handled by walking days newest first; the day is in the key only so that
    # keys of different days never compare equal.
    return (clip.day, clip.train, clip.camera, -int(clip.time), clip.stem)


class _Reader:
    """Reads metadata values, noting a problem for each one that is missing or wrong."""

    def __init__(self, meta: Mapping[str, str]) -> None:
        self.meta = meta
        self.problems: list[str] = []

    def bad(self, key: str, why: str) -> None:
        shown = self.meta.get(key)
        self.problems.append(f"metadata {key}: {why}" if shown is None
                             else f"metadata {key} {shown[:40]!r}: {why}")

    def time(self, key: str, required: bool) -> datetime | None:
        text = self.meta.get(key)
        if not text:
            if required:
                self.bad(key, "missing")
            return None
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            self.bad(key, "not an ISO 8601 time")
            return None
        if value.tzinfo is None:
            self.bad(key, "has no UTC offset")
            return None
        return value.astimezone(UTC)

    def number(self, key: str, low: float, high: float) -> float | None:
        text = self.meta.get(key)
        try:
            value = float(text) if text else None
        except ValueError:
            value = math.nan
        if value is None:
            return None
        if not low <= value <= high:  # also false for nan
            self.bad(key, f"not a number between {low:g} and {high:g}")
            return None
        return value

    def identifier(self, key: str, fallback: T, max_length: int = NAME_MAX) -> str | T:
        text = self.meta.get(key)
        if text is None:
            return fallback
        try:
            return check_identifier(text, key, max_length=max_length)
        except BadIdentifier:
            self.bad(key, "not an identifier")
            return fallback


def summarize(clip: ClipId, meta: Mapping[str, str], *, review_state: str,
              review_etag: str | None, thumbnail: bool, video_bytes: int) -> ClipSummary:
    """The clip's summary from its decoded metadata; what was wrong is in ``problems``."""
    read = _Reader(meta)
    if not meta:
        read.problems.append("the clip's blobs carry no metadata")
    start, end = read.time(Meta.START_UTC, bool(meta)), read.time(Meta.END_UTC, False)
    score = read.number(Meta.MAX_SCORE, 0.0, 1.0)
    if score is None and meta and Meta.MAX_SCORE not in meta:
        read.bad(Meta.MAX_SCORE, "missing")
    duration = read.number(Meta.DURATION_S, 0.0, 86400.0)
    if duration is None and start is not None and end is not None and end >= start:
        duration = round((end - start).total_seconds(), 3)
    part = read.number(Meta.PART, 1, 10_000)
    if part is not None and part != int(part):
        read.bad(Meta.PART, "not a whole number")
        part = None
    labels = [label[:MAX_LABEL_CHARS] for label in split_labels(meta.get(Meta.LABELS, ""))
              if label.isprintable()][:MAX_LABELS]
    return ClipSummary(
        id=clip, start_utc=start.isoformat() if start else None, max_score=score,
        labels=labels, event_id=read.identifier(Meta.EVENT_ID, clip.stem, EVENT_ID_MAX),
        part=int(part or 1), model_version=read.identifier(Meta.MODEL_VERSION, "", NAME_MAX),
        duration_s=duration, review_state=review_state, review_etag=review_etag,
        thumbnail=thumbnail, video_bytes=video_bytes,
        interrupted=meta.get(Meta.INTERRUPTED, "").lower() == "true",
        carriage=read.identifier(Meta.CARRIAGE, None),
        position=read.identifier(Meta.POSITION, None),
        problems=read.problems)


async def read_sidecar(store: Store, clip: ClipId) -> tuple[ClipSidecar | None, str | None]:
    """The clip's sidecar, validated by the clip contract, or (None, why not)."""
    try:
        data, _ = await store.read(clip.blob(SIDECAR_SUFFIX), MAX_SIDECAR_BYTES)
    except TooLarge:
        return None, f"the sidecar is larger than {MAX_SIDECAR_BYTES // 1024 // 1024} MB"
    try:
        return ClipSidecar.model_validate_json(data), None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "<root>"
        return None, (f"the sidecar does not follow the clip contract ({exc.error_count()} "
                      f"problem(s); first: {where}: {first['msg'][:120]})")
