"""Which clips leave when the outbox is over its quota.

Clips already uploaded and only kept for a while go first (they are safe in blob storage).
Then pending clips by policy: the oldest, or the lowest-scoring (oldest first among equals).
"Oldest" is by the clip's capture time (when its first frame was recorded), never by file
modification time: a clip rewritten later (a retry after a full disk) is no younger for it.
A clip being uploaded is never chosen: deleting it would waste the upload under way, and the
upload itself frees the space soon.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Sequence
from datetime import UTC, datetime

from uploader_module.outbox import Entry, Scan

# Camera event ids start with the trigger's UTC time: 20261121T221507Z-cam-01-1a2b3c.
_EVENT_TIME = re.compile(r"^(\d{8}T\d{6}Z)-")


def stem_time(stem: str) -> float | None:
    """The UTC time a camera event id starts with, in epoch seconds, or None."""
    match = _EVENT_TIME.match(stem)
    if match is None:
        return None
    try:
        return datetime.strptime(match.group(1), "%Y%m%dT%H%M%SZ").replace(
            tzinfo=UTC).timestamp()
    except ValueError:
        return None


def choose_evictions(scan: Scan, quota_bytes: int, policy: str, busy: Collection[str],
                     score: Callable[[Entry], float | None],
                     captured: Callable[[Entry], float] = lambda e: e.mtime,
                     ) -> tuple[list[Entry], list[Entry]]:
    """(kept clips to purge, pending clips to evict) that bring the outbox under its quota.
    ``score`` gives a pending clip's max score, None if unreadable (such a clip is left to the
    quarantine check, not evicted by score); ``captured`` its capture time (epoch seconds)."""
    excess = scan.used_bytes - quota_bytes
    purge: list[Entry] = []
    for entry in scan.kept:
        if excess <= 0:
            return purge, []
        purge.append(entry)
        excess -= entry.bytes
    evict: list[Entry] = []
    for entry in _ordered(scan.pending, policy, busy, score, captured):
        if excess <= 0:
            break
        evict.append(entry)
        excess -= entry.bytes
    return purge, evict


def _ordered(pending: Sequence[Entry], policy: str, busy: Collection[str],
             score: Callable[[Entry], float | None],
             captured: Callable[[Entry], float]) -> list[Entry]:
    candidates = [e for e in pending if e.stem not in busy]
    if policy == "oldest":
        return sorted(candidates, key=lambda e: (captured(e), e.stem))
    scored = [(s, e) for e in candidates if (s := score(e)) is not None]
    return [e for s, e in sorted(scored, key=lambda p: (p[0], captured(p[1]), p[1].stem))]
