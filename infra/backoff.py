"""Capped exponential backoff with equal jitter, for anything that may be away for hours.

Equal jitter (a wait drawn from the upper half of the current ceiling) rather than full jitter
(from zero up): it still spreads a fleet of trains that come back online at once, and it never
retries at once, which matters for the local endpoints (detector, edgeHub, Blob on Edge) whose
restart takes a second or two."""

from __future__ import annotations

import random


class Backoff:
    """Delays that double from ``initial`` up to ``maximum``, randomised so a fleet of trains
    coming back online at once does not hammer an endpoint in lock-step."""

    def __init__(self, initial: float, maximum: float, *, jitter: bool = True,
                 rng: random.Random | None = None) -> None:
        self.initial = initial
        self.maximum = maximum
        self.jitter = jitter
        self._rng = rng or random.Random()
        self.attempts = 0

    def next(self) -> float:
        """The wait before the next attempt."""
        ceiling = min(self.maximum, self.initial * (2 ** min(self.attempts, 32)))
        self.attempts += 1
        if not self.jitter:
            return ceiling
        return self._rng.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.attempts = 0
