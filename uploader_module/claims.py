"""Which clips the workers hold and which wait out a retry delay: all the queue state in memory.

The outbox folder is the queue; what a listing cannot tell is kept here. A clip being uploaded
is not claimed by a second worker, nor evicted under the one uploading it, and a clip whose
upload failed waits out its delay without holding up the clips behind it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from uploader_module.outbox import Entry


class Claims:
    """The stems being uploaded now and the retry times of those that failed."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        # Re-entrant: an eviction runs under it and may report an error that defers a clip.
        self._lock = threading.RLock()
        self._busy: set[str] = set()
        self._deferred: dict[str, float] = {}

    def claim(self, pending: Sequence[Entry]) -> Entry | None:
        """Take the first pending clip nobody holds and no retry delay holds back."""
        with self._lock:
            now = self._clock()
            for entry in pending:
                # The sidecar check drops clips another worker finished since the listing.
                if (entry.stem not in self._busy and self._deferred.get(entry.stem, 0.0) <= now
                        and entry.files.sidecar.exists()):
                    self._busy.add(entry.stem)
                    return entry
        return None

    def release(self, stem: str) -> None:
        with self._lock:
            self._busy.discard(stem)

    def defer(self, stem: str, delay_s: float) -> None:
        """Leave the clip alone for ``delay_s`` (its upload failed for a reason of its own)."""
        with self._lock:
            self._deferred[stem] = self._clock() + delay_s

    def done(self, stem: str) -> None:
        with self._lock:
            self._deferred.pop(stem, None)

    def clear_delays(self) -> None:
        """Retry every clip now (new settings may have fixed what was wrong)."""
        with self._lock:
            self._deferred.clear()

    def busy_count(self) -> int:
        with self._lock:
            return len(self._busy)

    @contextmanager
    def held(self) -> Iterator[frozenset[str]]:
        """No new claims while the block runs (it deletes clips); yields the stems being
        uploaded, which it must leave alone."""
        with self._lock:
            yield frozenset(self._busy)
