"""One status reporter for every module: what each service says about itself, in the twin.

Each service has a ``status()`` that returns reported-property sections. The reporter asks
every service on one thread: every ``interval_s``, soon after a service says something changed
(:meth:`StatusReporter.poke`, e.g. an upload finished or a model loaded), and once more at
stop. A section that is the same as last time is not sent again, so a quiet module costs the
hub (and a train's metered link) nothing.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from infra.logs import event
from infra.supervision import stop_thread

log = logging.getLogger(__name__)

STATUS_INTERVAL_S = 10.0
# A burst of pokes (a clip uploaded, then its alert) becomes one reported patch.
POKE_SETTLE_S = 0.2

StatusSource = Callable[[], Mapping[str, Any]]


class StatusReporter:
    """Asks its sources for sections and reports those that changed."""

    def __init__(self, report: Callable[[dict[str, Any]], None], *,
                 interval_s: float = STATUS_INTERVAL_S) -> None:
        self._report = report
        self._interval_s = interval_s
        self._sources: list[StatusSource] = []
        self._last: dict[str, Any] = {}
        self._poked = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="status", daemon=True)

    def add(self, source: StatusSource) -> None:
        self._sources.append(source)

    def poke(self) -> None:
        """Report soon: something a source says has changed."""
        self._poked.set()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and report once more, so the twin shows the state at exit."""
        stop_thread(self._thread, self._stop, self._poked)
        self.report_now()

    def report_now(self) -> None:
        """Ask every source and report the sections that changed since the last report."""
        with self._lock:
            changed: dict[str, Any] = {}
            for source in self._sources:
                try:
                    sections = dict(source())
                except Exception as exc:  # noqa: BLE001 - one bad source must not stop the rest
                    event(log, logging.WARNING, "status.source_failed",
                          error=f"{type(exc).__name__}: {exc}")
                    continue
                for name, value in sections.items():
                    if self._last.get(name) != value:
                        changed[name] = value
            if changed:
                # A copy: a source may hand out a structure it goes on changing.
                changed = copy.deepcopy(changed)
                self._report(changed)
                self._last.update(changed)

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._poked.wait(self._interval_s):
                self._stop.wait(POKE_SETTLE_S)
            self._poked.clear()
            if not self._stop.is_set():
                self.report_now()
