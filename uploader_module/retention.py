"""Deleting clips from the outbox for good: uploaded copies past their keeping time, and the
clips the quota gives up.

Each deletion is logged with why, since a clip that leaves without being uploaded is the one
thing an operator must be able to trace. A deletion that fails (permissions, a read-only disk)
is reported and retried with the next housekeeping pass.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from infra.logs import event
from uploader_module.clipset import ClipFiles
from uploader_module.outbox import Scan

log = logging.getLogger(__name__)

#: Reports a failed local file operation: (the error, the clip's stem if it is the clip's).
LocalErrors = Callable[[OSError, str | None], None]
KEPT_EXPIRED = "kept_expired"


def delete_clip(files: ClipFiles, why: str, on_error: LocalErrors) -> bool:
    """Delete the clip's files, sidecar last; False (and reported) if that failed."""
    try:
        for path in files.present():
            path.unlink()
    except OSError as exc:
        on_error(exc, None)
        return False
    event(log, logging.INFO if why == KEPT_EXPIRED else logging.WARNING, "outbox.deleted",
          stem=files.stem, why=why)
    return True


def purge_expired(scan: Scan, keep_hours: float, on_error: LocalErrors) -> bool:
    """Delete the clips in ``uploaded/`` kept longer than ``keep_hours``; whether any went."""
    cutoff = time.time() - keep_hours * 3600
    old = [e for e in scan.kept if e.mtime <= cutoff]
    for entry in old:
        delete_clip(entry.files, KEPT_EXPIRED, on_error)
    return bool(old)
