"""The outbox's free disk space: alerted once when it falls below ``outbox.min_free_mb``.

Uploading goes on while the disk is low (it is what frees space); the alert is for an operator
to look before the camera has nowhere to write its clips.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from pathlib import Path

from contracts.messages import DiskLow, Message
from infra.logs import event
from uploader_module.outbox import MB
from uploader_module.retention import LocalErrors

log = logging.getLogger(__name__)


class DiskWatch:
    """Free space of the outbox's disk, with an alert when it becomes low and a log line when
    it recovers."""

    def __init__(self, folder: Path, send: Callable[[Message], None],
                 on_error: LocalErrors) -> None:
        self._folder = folder
        self._send = send
        self._on_error = on_error
        self.low = False

    def check(self, min_free_mb: float) -> int | None:
        """Free bytes now (None if the disk cannot be asked)."""
        try:
            free = shutil.disk_usage(self._folder).free
        except OSError as exc:
            self._on_error(exc, None)
            return None
        low = free < min_free_mb * MB
        if low and not self.low:
            event(log, logging.ERROR, "disk.low", free_bytes=free, min_free_mb=min_free_mb,
                  folder=self._folder)
            self._send(DiskLow(free_bytes=free, folder=str(self._folder)))
        elif self.low and not low:
            event(log, logging.INFO, "disk.recovered", free_bytes=free)
        self.low = low
        return free
