"""Corrupt clips are moved aside with a note, never deleted: they may be the only evidence,
and someone has to see why they did not upload."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from infra.durable import replace_durably, write_atomic
from uploader_module.clipset import ClipFiles

REASON_FILE = "reason.json"


def quarantine(files: ClipFiles, folder: Path, reason: str) -> Path:
    """Move the clip's files into ``folder/<stem>/`` (a fresh name if that exists) and write
    ``reason.json`` beside them. Returns the clip's quarantine folder."""
    target = folder / files.stem
    if target.exists():
        target = folder / f"{files.stem}.{datetime.now(UTC):%Y%m%dT%H%M%S%f}"
    target.mkdir(parents=True)
    moved = []
    for path in files.present():
        replace_durably(path, target / path.name)
        moved.append(path.name)
    note = {"stem": files.stem, "reason": reason, "files": moved,
            "at": datetime.now(UTC).isoformat(timespec="seconds")}
    write_atomic(target / REASON_FILE, json.dumps(note, indent=2) + "\n")
    return target
