"""The outbox folder as the queue: what is waiting, what is half-written, what was kept.

The queue lives on disk and nowhere else, so it survives restarts and grows with an outage
without growing the process. A scan is a directory listing and a stat per file; nothing is
read, so scanning often is cheap. ``quarantine/``, ``uploaded/`` and ``announced/`` are
sub-folders of the outbox that the camera never writes to.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from contracts.clip import SIDECAR_SUFFIX
from uploader_module.announced import ANNOUNCED
from uploader_module.clipset import CLIP_SUFFIXES, ClipFiles

log = logging.getLogger(__name__)

QUARANTINE = "quarantine"
UPLOADED = "uploaded"
MB = 1024 * 1024  # bytes in the MB of the *_mb settings (quota, free space, block size)


@dataclass(frozen=True)
class Entry:
    """A group of clip files sharing a stem, as found by a scan."""

    files: ClipFiles
    bytes: int
    mtime: float  # newest file's modification time (for uploaded/: when it was confirmed)
    complete: bool

    @property
    def stem(self) -> str:
        return self.files.stem


@dataclass
class Scan:
    """One listing of the outbox and its ``uploaded/`` folder."""

    pending: list[Entry] = field(default_factory=list)  # complete, oldest first
    incomplete: list[Entry] = field(default_factory=list)  # no sidecar yet
    kept: list[Entry] = field(default_factory=list)  # uploaded, kept per keep_uploaded_hours

    @property
    def pending_bytes(self) -> int:
        return sum(e.bytes for e in self.pending)

    @property
    def used_bytes(self) -> int:
        """What counts against the quota (quarantine does not: it is evidence, never evicted)."""
        return sum(e.bytes for e in (*self.pending, *self.incomplete, *self.kept))


def _group(folder: Path) -> list[Entry]:
    groups: dict[str, list[os.stat_result]] = {}
    complete: set[str] = set()
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return []
    for item in entries:
        # Dot files are the camera's (or our) temporary files before their atomic rename.
        stem, suffix = os.path.splitext(item.name)
        if item.name.startswith(".") or suffix not in CLIP_SUFFIXES:
            continue
        try:
            if not item.is_file(follow_symlinks=False):
                continue
            stat = item.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue  # uploaded and deleted while we listed
        groups.setdefault(stem, []).append(stat)
        if suffix == SIDECAR_SUFFIX:
            complete.add(stem)
    return [Entry(ClipFiles(folder, stem), sum(s.st_size for s in stats),
                  max(s.st_mtime for s in stats), stem in complete)
            for stem, stats in groups.items()]


class Outbox:
    """Paths and listings of the outbox folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.quarantine = root / QUARANTINE
        self.uploaded = root / UPLOADED

    def create(self) -> None:
        for folder in (self.root, self.quarantine, self.root / ANNOUNCED):
            folder.mkdir(parents=True, exist_ok=True)

    def scan(self) -> Scan:
        scan = Scan()
        for entry in _group(self.root):
            (scan.pending if entry.complete else scan.incomplete).append(entry)
        scan.pending.sort(key=lambda e: (e.mtime, e.stem))
        scan.kept = sorted(_group(self.uploaded), key=lambda e: (e.mtime, e.stem))
        return scan

    def watch(self, on_change: Callable[[], None]) -> OutboxWatch:
        return OutboxWatch(self.root, on_change)


class _Handler(FileSystemEventHandler):
    def __init__(self, on_change: Callable[[], None]) -> None:
        self._on_change = on_change

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("created", "moved", "closed"):
            self._on_change()


class OutboxWatch:
    """File-system events for the outbox folder; they only hurry the next look, since events
    can be missed (overflow, a folder re-mounted) and the periodic scan is the backstop."""

    def __init__(self, root: Path, on_change: Callable[[], None]) -> None:
        self._observer = Observer()
        self._observer.schedule(_Handler(on_change), str(root), recursive=False)

    def start(self) -> None:
        self._observer.start()

    def stop(self) -> None:
        if self._observer.is_alive():
            self._observer.stop()
            self._observer.join(timeout=5)
