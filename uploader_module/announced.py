"""Which clips have been announced on output ``clips``: one durable marker per clip.

A clip's ``clip.uploaded`` message goes out once its blobs are confirmed, and only then are
its local files removed. A crash (SIGKILL, a power cut) between the two used to leave a clip
that was uploaded and announced but still in the outbox, so the next start announced it a
second time. Now a marker ``announced/<stem>.json`` is written durably right after the message
is handed to the link, before any file is removed; a clip found with its marker is only
cleaned up. The marker names the video's SHA-256, so a different clip that reuses the stem is
not taken for the announced one. It goes with the clip's last file; a marker left behind by a
crash in between is pruned by the housekeeping pass.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from contracts.clip import SIDECAR_SUFFIX
from infra.durable import fsync_dir, write_atomic

ANNOUNCED = "announced"
_SUFFIX = ".json"


class Announcements:
    """The markers in ``<outbox>/announced/``."""

    def __init__(self, outbox: Path) -> None:
        self.outbox = outbox
        self.folder = outbox / ANNOUNCED

    def _marker(self, stem: str) -> Path:
        return self.folder / f"{stem}{_SUFFIX}"

    def sent(self, stem: str, video_sha256: str) -> bool:
        """Whether this clip (this stem with this video) was announced already."""
        try:
            doc = json.loads(self._marker(stem).read_bytes())
        except FileNotFoundError:
            return False
        except (OSError, ValueError):
            return False  # unreadable: announcing again beats never announcing
        return isinstance(doc, dict) and doc.get("sha256") == video_sha256

    def record(self, stem: str, message_id: str, video_sha256: str) -> None:
        """Mark the clip announced; fsynced before it returns (OSError if the disk refuses)."""
        write_atomic(self._marker(stem), json.dumps({"stem": stem, "messageId": message_id,
                                                     "sha256": video_sha256}))

    def forget(self, stem: str) -> None:
        """The clip's files are gone: so goes its marker."""
        self._marker(stem).unlink(missing_ok=True)
        fsync_dir(self.folder)

    def prune(self) -> list[str]:
        """Remove markers whose clip has no sidecar in the outbox any more (a crash between
        the clean-up and :meth:`forget`); the stems pruned."""
        try:
            names = os.listdir(self.folder)
        except FileNotFoundError:
            return []
        pruned = []
        for name in names:
            stem = name.removesuffix(_SUFFIX)
            if name.startswith(".") or stem == name:
                continue
            if not (self.outbox / f"{stem}{SIDECAR_SUFFIX}").exists():
                self._marker(stem).unlink(missing_ok=True)
                pruned.append(stem)
        return pruned
