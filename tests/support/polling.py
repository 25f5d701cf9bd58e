"""Waiting for something to become true, without sleeps standing in for assertions."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(predicate: Callable[[], object], timeout_s: float,
               interval_s: float = 0.05) -> bool:
    """Poll ``predicate`` until it is truthy or ``timeout_s`` passes; whether it held."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return bool(predicate())
