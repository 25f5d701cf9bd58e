"""Clip files without their sidecar, long after they appeared: the camera died mid-clip, or a
disk filled while it wrote. They are never uploaded (a sidecar is what makes a clip complete)
nor deleted by us, so someone has to be told, once per leftover.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from contracts.messages import ClipIncomplete, Message
from infra.logs import event
from uploader_module.outbox import Scan

log = logging.getLogger(__name__)


class LeftoverWatch:
    """Alerts each incomplete clip older than the grace time once, while it stays."""

    def __init__(self, send: Callable[[Message], None]) -> None:
        self._send = send
        self._alerted: set[str] = set()

    def check(self, scan: Scan, grace_s: float) -> int:
        """Alert the new leftovers in ``scan``; how many leftovers there are."""
        cutoff = time.time() - grace_s
        leftovers = [e for e in scan.incomplete if e.mtime <= cutoff]
        for entry in leftovers:
            if entry.stem in self._alerted:
                continue
            self._alerted.add(entry.stem)
            names = [p.name for p in entry.files.present()]
            age_s = round(time.time() - entry.mtime)
            event(log, logging.WARNING, "clip.incomplete", stem=entry.stem, files=",".join(names),
                  age_s=age_s)
            self._send(ClipIncomplete(stem=entry.stem, files=names, bytes=entry.bytes,
                                      age_s=age_s))
        # A leftover that went (deleted, or completed after all) is alerted again if it returns.
        self._alerted &= {e.stem for e in leftovers}
        return len(leftovers)
