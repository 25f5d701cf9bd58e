"""Review marks: a small JSON blob next to the clip, written with ETag conditions.

``<clip>.review.json`` is a blob of its own so it tiers to the cloud with the clip, is seen by
every operator and survives restarts of the viewer. Its state is copied into the blob's
metadata so the list shows and filters review states without reading a single review. Writes
are conditional on the ETag the operator saw (or on there being no review yet), so two
operators marking the same clip never overwrite each other silently: the second gets a
:class:`~viewer.store.Conflict`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from contracts.blob_layout import (
    CONTENT_TYPES,
    REVIEW_SUFFIX,
    BadClipId,
    ClipId,
    Meta,
    encode_metadata,
    parse,
)
from infra.logs import event
from viewer.catalog import REVIEW_STATES, Catalog
from viewer.store import Conflict, Missing, Store, StoreError, TooLarge

log = logging.getLogger(__name__)
SCHEMA_VERSION = 1
MAX_NOTE = 2000
MAX_BULK = 500
MAX_REVIEW_BYTES = 64 * 1024
# An ETag as the storage service gives them: printable ASCII, short. Anything else from a
# client (control characters, a megabyte) would go into an If-Match header.
MAX_ETAG = 128


@dataclass(frozen=True)
class Review:
    """A review mark; deliberately without reviewer identity (no personal data stored)."""

    state: str
    note: str
    updated_utc: str

    def to_json(self) -> dict[str, Any]:
        return {"state": self.state, "note": self.note, "updated_utc": self.updated_utc}


def check(state: object, note: object) -> tuple[str, str]:
    """A valid (state, note) or :class:`BadClipId` (answered 400)."""
    if state not in REVIEW_STATES:
        raise BadClipId(f"state must be one of {', '.join(REVIEW_STATES)}")
    if note is None:
        note = ""
    if not isinstance(note, str) or len(note) > MAX_NOTE:
        raise BadClipId(f"note must be text of at most {MAX_NOTE} characters")
    return str(state), note


def check_etag(value: object) -> str | None:
    """The ``etag`` a client sent (None: "no review yet"), or :class:`BadClipId`."""
    if value is None:
        return None
    if (not isinstance(value, str) or not 0 < len(value) <= MAX_ETAG or not value.isascii()
            or not value.isprintable()):
        raise BadClipId(f"etag must be the review_etag the viewer gave (printable ASCII, at "
                        f"most {MAX_ETAG} characters) or null")
    return value


async def read(store: Store, clip: ClipId) -> tuple[Review | None, str | None]:
    """The clip's review and its ETag, or (None, None) if it has none."""
    try:
        data, etag = await store.read(clip.blob(REVIEW_SUFFIX), MAX_REVIEW_BYTES)
    except Missing:
        return None, None
    except TooLarge:
        return None, await _etag(store, clip)
    try:
        doc = json.loads(data)
        state, note = check(doc["state"], doc.get("note"))
        updated = doc.get("updated_utc")
        return Review(state, note, updated if isinstance(updated, str) else ""), etag
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
        # Unreadable (storage is not trusted): shown as unreviewed, but the ETag is kept so
        # that a save replaces it.
        return None, etag


async def _etag(store: Store, clip: ClipId) -> str | None:
    """The review blob's ETag, from a listing (its body is not read)."""
    found = [e for e in await store.entries(clip.blob(REVIEW_SUFFIX))
             if e.name == clip.blob(REVIEW_SUFFIX)]
    return found[0].etag if found else None


async def write(store: Store, clip: ClipId, state: str, note: str,
                etag: str | None) -> tuple[Review, str]:
    """Save a review if the stored one still has ``etag`` (None: if there is none)."""
    review = Review(state, note, datetime.now(UTC).isoformat(timespec="seconds"))
    body = {"schema_version": SCHEMA_VERSION, "clip": str(clip), **review.to_json()}
    try:
        new_etag = await store.write(
            clip.blob(REVIEW_SUFFIX), json.dumps(body, indent=2).encode(),
            content_type=CONTENT_TYPES[REVIEW_SUFFIX],
            metadata=encode_metadata({Meta.REVIEW_STATE: state,
                                      Meta.UPDATED_UTC: review.updated_utc}),
            etag=etag)
    except Conflict:
        event(log, logging.WARNING, "review.conflict", clip=str(clip), state=state)
        raise Conflict(f"the review of {clip} was changed by someone else since you loaded "
                       "it; reload the clip to see the current mark, then save again") from None
    event(log, logging.INFO, "review.saved", clip=str(clip), state=state)
    return review, new_etag


async def bulk(store: Store, catalog: Catalog, items: list[Any], state: str,
               note: str) -> list[dict[str, Any]]:
    """Mark many clips; one result per item, a failure never stops the others.

    An item is a clip id (the current review, whatever it is, is replaced, still with an ETag
    condition against a write in between) or ``{"id": ..., "etag": ...}`` with the ETag the
    operator saw in the list (null: no review then).
    """
    if not isinstance(items, list) or not items or len(items) > MAX_BULK:
        raise BadClipId(f"clips must be a list of 1 to {MAX_BULK} clip ids")
    results = []
    for item in items:
        raw = item.get("id") if isinstance(item, dict) else item
        result: dict[str, Any] = {"id": raw}
        try:
            if not isinstance(raw, str):
                raise BadClipId("clip id must be text")
            clip = parse(raw)
            summary = await catalog.clip(clip)
            etag = (check_etag(item.get("etag")) if isinstance(item, dict)
                    else summary.review_etag)
            review, new_etag = await write(store, clip, state, note, etag)
            result.update(ok=True, status=200, review=review.to_json(), etag=new_etag)
        except BadClipId as exc:
            result.update(ok=False, status=400, error="bad_request", message=str(exc))
        except StoreError as exc:
            result.update(ok=False, status=exc.status, error=exc.kind, message=str(exc))
        results.append(result)
    return results
