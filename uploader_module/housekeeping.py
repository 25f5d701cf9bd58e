"""The outbox's housekeeping: one thread that looks at the whole outbox now and then.

A pass (at start, every ``outbox.scan_interval_s`` and soon after a file-system event) purges
kept clips past their time, enforces the quota, alerts leftovers and a low disk, prunes
announced markers left by a crash, and hands what it found (:class:`Findings`) to the service
for the ``upload`` status. Each of those jobs has a module of its own; this only runs them in
order, on a thread apart from the uploads, so a slow upload never delays the quota. The thread
is a supervised worker (``uploader-scan``): a local file error is reported and the next pass
tries again; anything else is a bug for the supervisor (traceback, alert, restart).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from config.uploader import UploaderSettings
from contracts.messages import Message
from infra.logs import event
from infra.supervision import Workers
from uploader_module.announced import Announcements
from uploader_module.claims import Claims
from uploader_module.disk import DiskWatch
from uploader_module.eviction import QuotaKeeper
from uploader_module.leftovers import LeftoverWatch
from uploader_module.outbox import Outbox, Scan
from uploader_module.retention import LocalErrors, purge_expired
from uploader_module.status import UploadStatus

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Findings:
    """What a pass found, for the ``upload`` status."""

    scan: Scan
    leftovers: int
    disk_free: int | None
    disk_low: bool


# Coalesces a burst of file-system events into one pass.
SETTLE_S = 0.5


class Housekeeper:
    """Runs housekeeping passes on its own thread; :meth:`poke` asks for one soon."""

    def __init__(self, outbox: Outbox, settings: Callable[[], UploaderSettings], *,
                 claims: Claims, status: UploadStatus, send: Callable[[Message], None],
                 on_error: LocalErrors, after_pass: Callable[[Findings], None],
                 announcements: Announcements) -> None:
        self._outbox = outbox
        self._announcements = announcements
        self._settings = settings
        self._on_error = on_error
        self._after_pass = after_pass
        self._quota = QuotaKeeper(claims, status, send, on_error)
        self._leftovers = LeftoverWatch(send)
        self._disk = DiskWatch(outbox.root, send, on_error)
        self._stop = threading.Event()
        self._poke = threading.Event()
        self._thread: threading.Thread | None = None
        #: Set once the first pass is over (or the service stops): the upload workers wait.
        self.first_pass = threading.Event()

    def start(self, workers: Workers) -> None:
        self._thread = workers.spawn("uploader-scan", self._run)

    def poke(self) -> None:
        self._poke.set()

    def stop(self, timeout_s: float) -> None:
        self._stop.set()
        self._poke.set()
        self.first_pass.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=timeout_s)

    def run_once(self) -> None:
        """One pass; a local file error is reported, not raised."""
        try:
            self._pass()
        except OSError as exc:
            self._on_error(exc, None)

    def _run(self) -> None:
        """The worker: a first pass at once, then one per interval or poke, until stopped."""
        try:
            self.run_once()
        finally:
            self.first_pass.set()
        while not self._stop.is_set():
            self._poke.wait(self._settings().outbox.scan_interval_s)
            self._poke.clear()
            if self._stop.wait(SETTLE_S):
                return
            self.run_once()

    def _pass(self) -> None:
        settings = self._settings()
        self._outbox.create()
        scan = self._outbox.scan()
        purged = purge_expired(scan, settings.upload.keep_uploaded_hours, self._on_error)
        if self._quota.enforce(scan, settings.outbox) or purged:
            scan = self._outbox.scan()
        for stem in self._announcements.prune():
            event(log, logging.INFO, "outbox.announced_mark_pruned", stem=stem)
        leftovers = self._leftovers.check(scan, settings.outbox.incomplete_grace_s)
        free = self._disk.check(settings.outbox.min_free_mb)
        self._after_pass(Findings(scan, leftovers, free, self._disk.low))
