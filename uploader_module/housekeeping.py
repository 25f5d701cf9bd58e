"""The outbox's housekeeping: one thread that looks at the whole outbox now and then.

A pass (at start, every ``outbox.scan_interval_s`` and soon after a file-system event) purges
kept clips past their time, enforces the quota, alerts leftovers and a low disk, and hands what
it found (:class:`Findings`) to the service for the ``upload`` status. Each of those jobs has a
module of its own; this only runs them in order, on a thread apart from the uploads, so a slow
upload never delays the quota.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from config.uploader import UploaderSettings
from contracts.messages import Message
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
                 on_error: LocalErrors, after_pass: Callable[[Findings], None]) -> None:
        self._outbox = outbox
        self._settings = settings
        self._on_error = on_error
        self._after_pass = after_pass
        self._quota = QuotaKeeper(claims, status, send, on_error)
        self._leftovers = LeftoverWatch(send)
        self._disk = DiskWatch(outbox.root, send, on_error)
        self._stop = threading.Event()
        self._poke = threading.Event()
        self._thread = threading.Thread(target=self._run, name="uploader-scan", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def poke(self) -> None:
        self._poke.set()

    def stop(self, timeout_s: float) -> None:
        self._stop.set()
        self._poke.set()
        if self._thread.is_alive():
            self._thread.join(timeout=timeout_s)

    def run_once(self) -> None:
        """One pass; a bug in it is logged and the next pass tries again."""
        try:
            self._pass()
        except Exception:
            log.exception("housekeeping.failed")

    def _run(self) -> None:
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
        leftovers = self._leftovers.check(scan, settings.outbox.incomplete_grace_s)
        free = self._disk.check(settings.outbox.min_free_mb)
        self._after_pass(Findings(scan, leftovers, free, self._disk.low))
