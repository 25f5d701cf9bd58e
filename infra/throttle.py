"""A byte-rate cap for transfers that share the train's uplink (uploads, model downloads).

Every ``*_kbps`` setting means kilobytes per second with 1 kB = :data:`KB` = 1000 bytes, the
unit network links are sold and measured in."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

KB = 1000  # bytes in the kB of every *_kbps setting


class Throttle:
    """Token bucket with at most one second of burst. Callers reserve bytes before sending
    and wait off their debt, so concurrent uploads together stay under the rate; a rate of
    0 means no cap. The cap is as fine-grained as the requests it is asked about (a block)."""

    def __init__(self, bytes_per_s: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._rate = bytes_per_s
        self._tokens = bytes_per_s
        self._last = clock()

    @classmethod
    def kbps(cls, kbps: float, *, clock: Callable[[], float] = time.monotonic) -> Throttle:
        """A throttle for a ``*_kbps`` setting (0: no cap)."""
        return cls(kbps * KB, clock=clock)

    def set_rate(self, bytes_per_s: float) -> None:
        with self._lock:
            self._rate = bytes_per_s
            self._tokens = min(self._tokens, bytes_per_s)

    def reserve(self, nbytes: int) -> float:
        """Take ``nbytes`` from the bucket; returns how long to wait before sending them."""
        with self._lock:
            if self._rate <= 0:
                return 0.0
            now = self._clock()
            self._tokens = min(self._rate, self._tokens + (now - self._last) * self._rate)
            self._last = now
            self._tokens -= nbytes
            return max(0.0, -self._tokens / self._rate)

    def wait(self, nbytes: int, stop: threading.Event) -> bool:
        """Block until ``nbytes`` may go; False if ``stop`` was set meanwhile."""
        delay = self.reserve(nbytes)
        return not (delay and stop.wait(delay))
