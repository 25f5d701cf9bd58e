"""Worker threads under one supervisor: no worker dies silently.

A module's threads (the camera's detect loop, the uploader's workers, the detector's model
loader, ...) are started through :class:`Workers`. When a worker's function raises, the
supervisor logs it once with its traceback, counts it, tells the module (which raises an
alert), and runs the function again after a backoff. A worker that keeps failing
(``max_failures`` within ``window_s``) is given up and :attr:`Workers.fatal` is set: the module
then exits non-zero, so IoT Edge restarts the whole container, which is the right cure for a
state the code cannot repair itself. :meth:`Workers.health` says which worker is not running,
for ``/healthz`` and the reported properties.

A worker function returns when its job is over (normally when the module stops); it is not
restarted then.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from infra.backoff import Backoff
from infra.logs import event, event_with_traceback

log = logging.getLogger(__name__)

MAX_FAILURES = 5
WINDOW_S = 300.0
RESTART_INITIAL_S = 1.0
RESTART_MAX_S = 30.0


@dataclass(frozen=True)
class WorkerFailure:
    """One unexpected exception in a worker, as the module hears of it."""

    worker: str
    error: str
    failures: int
    restarting: bool


@dataclass
class _Worker:
    name: str
    target: Callable[[], None]
    thread: threading.Thread | None = None
    failures: deque[float] = field(default_factory=deque)
    total_failures: int = 0
    last_error: str | None = None
    state: str = "starting"  # running, restarting, stopped, failed


class Workers:
    """Starts, supervises and reports a module's worker threads."""

    def __init__(self, on_failure: Callable[[WorkerFailure], None] | None = None, *,
                 max_failures: int = MAX_FAILURES, window_s: float = WINDOW_S,
                 restart_initial_s: float = RESTART_INITIAL_S,
                 restart_max_s: float = RESTART_MAX_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._on_failure = on_failure
        self._max_failures = max_failures
        self._window_s = window_s
        self._restart = (restart_initial_s, restart_max_s)
        self._clock = clock
        self._workers: dict[str, _Worker] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.fatal = threading.Event()

    def spawn(self, name: str, target: Callable[[], None]) -> threading.Thread:
        """Run ``target`` on a daemon thread called ``name``, restarted if it raises."""
        with self._lock:
            if name in self._workers and self._workers[name].state in ("running", "restarting"):
                raise ValueError(f"worker {name!r} is already running")
            worker = _Worker(name, target)
            self._workers[name] = worker
        worker.thread = threading.Thread(target=self._run, args=(worker,), name=name,
                                         daemon=True)
        worker.thread.start()
        return worker.thread

    def stop(self) -> None:
        """No more restarts from now on (the workers' own stop signals end them)."""
        self._stopping.set()

    def join(self, timeout_s: float) -> None:
        deadline = self._clock() + timeout_s
        for worker in list(self._workers.values()):
            if worker.thread is not None:
                worker.thread.join(max(0.0, deadline - self._clock()))

    def health(self) -> dict[str, dict[str, object]]:
        """Per worker: its state, failures so far and the last error (for /healthz and the
        reported ``workers`` section)."""
        with self._lock:
            return {w.name: {"state": w.state, "failures": w.total_failures,
                             "lastError": w.last_error} for w in self._workers.values()}

    def not_running(self) -> list[str]:
        """Workers that should be running but are not (restarting or given up)."""
        with self._lock:
            return sorted(w.name for w in self._workers.values()
                          if w.state in ("restarting", "failed"))

    def _run(self, worker: _Worker) -> None:
        backoff = Backoff(*self._restart)
        while True:
            worker.state = "running"
            try:
                worker.target()
            except Exception as exc:  # noqa: BLE001 - the point: no exception ends a worker unseen
                if not self._failed(worker, exc):
                    return
                if self._stopping.wait(backoff.next()):
                    worker.state = "stopped"
                    return
                continue
            worker.state = "stopped"
            return

    def _failed(self, worker: _Worker, exc: Exception) -> bool:
        """Record a failure; True if the worker is to be restarted."""
        now = self._clock()
        with self._lock:
            worker.failures.append(now)
            while worker.failures and worker.failures[0] < now - self._window_s:
                worker.failures.popleft()
            worker.total_failures += 1
            worker.last_error = f"{type(exc).__name__}: {exc}"[:200]
            give_up = len(worker.failures) >= self._max_failures
            restarting = not give_up and not self._stopping.is_set()
            worker.state = "restarting" if restarting else "failed"
        event_with_traceback(log, logging.ERROR, "worker.failed", exc, worker=worker.name,
                             failures=worker.total_failures, restarting=restarting)
        if give_up:
            event(log, logging.CRITICAL, "worker.given_up", worker=worker.name,
                  failures=len(worker.failures), window_s=self._window_s,
                  action="the module exits so that IoT Edge restarts it")
            self.fatal.set()
        if self._on_failure is not None:
            try:
                self._on_failure(WorkerFailure(worker.name, worker.last_error,
                                               worker.total_failures, restarting))
            except Exception:  # noqa: BLE001 - reporting a failure must not fail the supervisor
                log.exception("worker.alert_failed worker=%s", worker.name)
        return restarting


def stop_thread(thread: threading.Thread, *flags: threading.Event, timeout_s: float = 5.0) -> None:
    """Set ``flags`` (the thread's stop flag and whatever it waits on), then wait for it at most
    ``timeout_s``: a daemon thread stuck in a call must not hold up the module's exit."""
    for flag in flags:
        flag.set()
    if thread.is_alive():
        thread.join(timeout=timeout_s)
