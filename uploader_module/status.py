"""The ``upload`` section of the reported properties: enough for an operator to tell from the
cloud whether a train's clips are flowing, stuck, or being lost to the quota."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

from uploader_module.outbox import Scan


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class UploadStatus:
    """Counters and last outcomes, updated by the workers and the housekeeping loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._doc: dict[str, Any] = {
            "state": "starting", "retryInS": 0.0, "pendingClips": 0, "pendingBytes": 0,
            "oldestPendingAgeS": None,
            "uploading": 0, "uploadedClips": 0, "uploadedBytes": 0, "quarantinedClips": 0,
            "evictedClips": 0, "incompleteClips": 0, "internalErrors": 0, "outboxBytes": 0,
            "diskFreeBytes": None, "diskLow": False, "lastSuccess": None, "lastError": None,
        }

    def outbox(self, scan: Scan, *, uploading: int, leftovers: int, disk_free: int | None,
               disk_low: bool, retry_in_s: float) -> None:
        oldest = min((e.mtime for e in scan.pending), default=None)
        with self._lock:
            self._doc.update(
                pendingClips=len(scan.pending), pendingBytes=scan.pending_bytes,
                oldestPendingAgeS=None if oldest is None else round(time.time() - oldest, 1),
                uploading=uploading, incompleteClips=leftovers, outboxBytes=scan.used_bytes,
                diskFreeBytes=disk_free, diskLow=disk_low, retryInS=round(retry_in_s, 1))

    def state(self, state: str) -> None:
        with self._lock:
            self._doc["state"] = state

    def success(self, event_id: str, stem: str, nbytes: int) -> None:
        with self._lock:
            self._doc["uploadedClips"] += 1
            self._doc["uploadedBytes"] += nbytes
            self._doc["lastSuccess"] = {"at": _now(), "eventId": event_id, "stem": stem,
                                        "bytes": nbytes}

    def error(self, kind: str, message: str, stem: str | None = None) -> None:
        with self._lock:
            self._doc["lastError"] = {"at": _now(), "kind": kind, "message": message,
                                      "stem": stem}

    def count(self, key: str) -> None:
        with self._lock:
            self._doc[key] += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {k: dict(v) if isinstance(v, dict) else v for k, v in self._doc.items()}
