"""Which clips leave when the outbox is over its quota.

Clips already uploaded and only kept for a while go first (they are safe in blob storage).
Then pending clips by policy: the oldest, or the lowest-scoring (oldest first among equals).
A clip being uploaded is never chosen: deleting it would waste the upload under way, and the
upload itself frees the space soon.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

from uploader_module.outbox import Entry, Scan


def choose_evictions(scan: Scan, quota_bytes: int, policy: str, busy: Collection[str],
                     score: Callable[[Entry], float | None]) -> tuple[list[Entry], list[Entry]]:
    """(kept clips to purge, pending clips to evict) that bring the outbox under its quota.
    ``score`` gives a pending clip's max score, None if unreadable (such a clip is left to the
    quarantine check, not evicted)."""
    excess = scan.used_bytes - quota_bytes
    purge: list[Entry] = []
    for entry in scan.kept:
        if excess <= 0:
            return purge, []
        purge.append(entry)
        excess -= entry.bytes
    evict: list[Entry] = []
    for entry in _ordered(scan.pending, policy, busy, score):
        if excess <= 0:
            break
        evict.append(entry)
        excess -= entry.bytes
    return purge, evict


def _ordered(pending: Sequence[Entry], policy: str, busy: Collection[str],
             score: Callable[[Entry], float | None]) -> list[Entry]:
    candidates = [e for e in pending if e.stem not in busy]
    if policy == "oldest":
        return sorted(candidates, key=lambda e: (e.mtime, e.stem))
    scored = [(s, e) for e in candidates if (s := score(e)) is not None]
    return [e for s, e in sorted(scored, key=lambda p: (p[0], p[1].mtime, p[1].stem))]
