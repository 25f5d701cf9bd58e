"""Durable writes: a file is either its old content or its new content after a power cut.

Trains are switched off at the depot without a shutdown. A plain ``os.replace`` makes the new
name visible at once, but the data and the rename may still sit in the page cache: after a
power cut the file can be empty, or the old one can be back. Every writer of durable state
(settings last good, the active model pointer, clips, twin files, resume markers, queued
and local output messages) goes through here, so each write is fsynced, renamed, and its
folder fsynced.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path


def fsync_path(path: Path) -> None:
    """Flush a file's data, or a folder's entries (so a rename in it survives a power cut)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(folder: Path) -> None:
    """Flush a folder's entries; a file system that cannot (some network mounts) is let be."""
    with contextlib.suppress(OSError):
        fsync_path(folder)


def temp_beside(path: Path) -> Path:
    """A hidden temporary name in the same folder (same file system, so the rename is atomic;
    hidden, so folder watchers such as the uploader's ignore it)."""
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")


def write_synced(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` and flush it to the disk (no rename: for temporary files)."""
    with path.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def append_synced(path: Path, data: bytes) -> None:
    """Append ``data`` to ``path`` and flush it to the disk; a file this creates has its folder
    entry flushed too, so a power cut keeps every line that was appended before it."""
    created = not path.exists()
    with path.open("ab") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    if created:
        fsync_dir(path.parent)


def replace_durably(source: Path, target: Path) -> None:
    """Rename ``source`` (already written) over ``target``: data, rename and folder flushed."""
    fsync_path(source)
    os.replace(source, target)
    fsync_dir(target.parent)


def write_atomic(path: Path, data: bytes | str, *, mode: int | None = None) -> None:
    """Replace ``path`` with ``data`` so that a crash or power cut leaves old or new, whole.

    ``mode`` sets the permissions before the file becomes visible (e.g. 0o600 for secrets)."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_beside(path)
    try:
        # Created with the final mode, so a secret is never readable by others, even briefly.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666 if mode is None else mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        if mode is not None:
            tmp.chmod(mode)  # exactly this mode, whatever the umask
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
