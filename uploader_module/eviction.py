"""Keeping the outbox under its quota: which clips leave is :mod:`uploader_module.quota`'s
choice; this deletes them, under the claims so no worker picks one up meanwhile, and says so.

An evicted clip is lost evidence, so each one is alerted (output ``alerts``) and counted in the
reported properties, with the policy and the sizes that made the choice.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable

from config.uploader import OutboxSettings
from contracts.messages import ClipEvicted, Message
from infra.logs import event
from uploader_module.claims import Claims
from uploader_module.clipset import CorruptClip, read_sidecar
from uploader_module.outbox import MB, Entry, Scan
from uploader_module.quota import choose_evictions, stem_time
from uploader_module.retention import LocalErrors, delete_clip
from uploader_module.status import UploadStatus

log = logging.getLogger(__name__)


class QuotaKeeper:
    """Deletes kept clips, then evicts pending ones, until the outbox fits its quota."""

    def __init__(self, claims: Claims, status: UploadStatus, send: Callable[[Message], None],
                 on_error: LocalErrors) -> None:
        self._claims = claims
        self._status = status
        self._send = send
        self._on_error = on_error
        # A pending clip's (max score, capture time) by stem, valid while its mtime is
        # unchanged: the policies would otherwise read every sidecar on every pass over quota.
        self._facts: dict[str, tuple[float, float | None, float]] = {}

    def enforce(self, scan: Scan, outbox: OutboxSettings) -> bool:
        """Bring the outbox under ``outbox.quota_mb``; whether any clip was deleted."""
        quota = int(outbox.quota_mb * MB)
        if scan.used_bytes <= quota:
            return False
        pending = {e.stem for e in scan.pending}
        self._facts = {stem: facts for stem, facts in self._facts.items() if stem in pending}
        with self._claims.held() as busy:
            purge, evict = choose_evictions(scan, quota, outbox.eviction, busy, self._score,
                                            self._captured)
            for entry in purge:
                delete_clip(entry.files, "quota", self._on_error)
            for entry in evict:
                self._evict(entry, outbox.eviction, scan.used_bytes, quota)
        if scan.used_bytes - sum(e.bytes for e in (*purge, *evict)) > quota:
            event(log, logging.WARNING, "outbox.over_quota", used_bytes=scan.used_bytes,
                  quota_bytes=quota, reason="remaining clips are being uploaded or unreadable")
        return bool(purge or evict)

    def _evict(self, entry: Entry, policy: str, used: int, quota: int) -> None:
        score = self._score(entry)
        event_id = None
        with contextlib.suppress(CorruptClip, OSError):
            event_id = read_sidecar(entry.files.sidecar).event_id
        if not delete_clip(entry.files, "evicted", self._on_error):
            return
        self._status.count("evictedClips")
        event(log, logging.WARNING, "clip.evicted", event_id=event_id, stem=entry.stem,
              bytes=entry.bytes, max_score=score, policy=policy, used_bytes=used,
              quota_bytes=quota)
        self._send(ClipEvicted(event_id=event_id, stem=entry.stem, bytes=entry.bytes,
                               max_score=score, policy=policy, outbox_bytes=used,
                               quota_bytes=quota))

    def _score(self, entry: Entry) -> float | None:
        return self._read(entry)[0]

    def _captured(self, entry: Entry) -> float:
        return self._read(entry)[1]

    def _read(self, entry: Entry) -> tuple[float | None, float]:
        """(max score or None, capture time) of a pending clip, from its sidecar (start_utc);
        unreadable, the event id's time, else the file time."""
        cached = self._facts.get(entry.stem)
        if cached is not None and cached[0] == entry.mtime:
            return cached[1], cached[2]
        try:
            sidecar = read_sidecar(entry.files.sidecar)
            score: float | None = sidecar.max_score
            captured = sidecar.start_utc.timestamp()
        except (CorruptClip, OSError):
            score, captured = None, stem_time(entry.stem) or entry.mtime
        self._facts[entry.stem] = (entry.mtime, score, captured)
        return score, captured
