"""One shared verdict on the endpoint, so that while it is down every worker waits together
instead of each hammering it with its own retries."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from infra.backoff import Backoff

OK = "ok"
UNREACHABLE = "unreachable"
AUTH_REFUSED = "auth_refused"
NOT_CONFIGURED = "not_configured"


class EndpointGate:
    """Open, or closed until a retry time after a failure (backoff, or the slow auth pace)."""

    def __init__(self, initial_s: float, max_s: float, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._cond = threading.Condition()
        self._backoff = Backoff(initial_s, max_s)
        self._retry_at = 0.0
        self.state = OK

    def configure(self, initial_s: float, max_s: float) -> None:
        with self._cond:
            self._backoff.initial, self._backoff.maximum = initial_s, max_s

    def wait_open(self, stop: threading.Event, poll_s: float = 0.5) -> bool:
        """Block until the gate opens; False when ``stop`` is set first."""
        with self._cond:
            while not stop.is_set():
                delay = self._retry_at - self._clock()
                if delay <= 0:
                    return True
                self._cond.wait(min(delay, poll_s))
        return False

    def retry_in(self) -> float:
        with self._cond:
            return max(0.0, self._retry_at - self._clock())

    def failed(self, state: str, delay_s: float | None = None) -> float:
        """Close the gate. ``delay_s`` None means the next backoff step, taken only once per
        outage wave: workers failing together do not each double the wait."""
        with self._cond:
            now = self._clock()
            if delay_s is None:
                if self.state == state and self._retry_at > now:
                    return self._retry_at - now
                delay_s = self._backoff.next()
            self.state = state
            self._retry_at = now + delay_s
            return delay_s

    def succeeded(self) -> None:
        with self._cond:
            self._backoff.reset()
            self.state = OK
            self._retry_at = 0.0
            self._cond.notify_all()

    def reopen(self) -> None:
        """Try again now (new settings may have fixed what was wrong)."""
        with self._cond:
            self._retry_at = 0.0
            self._cond.notify_all()
