"""The local model repository: ``<root>/<name>/<version>/`` plus an atomic active pointer.

``active.json`` names the active version; it is written with :func:`infra.durable.write_atomic`,
so a power cut leaves either the old or the new pointer. A version folder is renamed into place
only once its files are on the disk, so the pointer never names a half-written model. Partial
downloads live in ``.downloads/``, unpacking in ``.staging/``; both are ignored as versions.

Names and versions are identifiers (:func:`contracts.identifiers.check_identifier`) before they
become a path, and so is what is read back: an ``active.json`` naming ``../x`` or ``/etc`` (or
holding no JSON at all) is reported once and read as "no active version", so the detector
boots the bundled sample instead of failing; a folder whose name is not an identifier is not
a version.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import uuid
from datetime import UTC, datetime
from pathlib import Path

from contracts.identifiers import BadIdentifier, check_identifier
from infra.durable import replace_durably, write_atomic
from infra.logs import event

log = logging.getLogger(__name__)

ACTIVE = "active.json"


def _version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"[._-]", version))


def _is_identifier(value: str) -> bool:
    try:
        check_identifier(value, "folder")
    except BadIdentifier:
        return False
    return True


class ModelRepository:
    """Versions kept on the module's volume, so a restart without network still boots the
    active one and a rollback needs no download."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.downloads = root / ".downloads"
        self.staging = root / ".staging"

    def ensure(self) -> None:
        """Clear half-unpacked leftovers of a previous run (folders are made when needed)."""
        shutil.rmtree(self.staging, ignore_errors=True)

    def path(self, name: str, version: str) -> Path:
        """The folder of a version; BadIdentifier (a ValueError) unless both are identifiers."""
        return (self.root / check_identifier(name, "model name")
                / check_identifier(version, "model version"))

    def new_staging(self) -> Path:
        self.staging.mkdir(parents=True, exist_ok=True)
        return self.staging / uuid.uuid4().hex

    def versions(self, name: str) -> list[str]:
        return sorted(self._folders(self.root / check_identifier(name, "model name")),
                      key=_version_key)

    def names(self) -> list[str]:
        return sorted(self._folders(self.root))

    @staticmethod
    def _folders(folder: Path) -> list[str]:
        """Sub-folders whose names are identifiers (hidden ones, .staging, are not)."""
        if not folder.is_dir():
            return []
        return [p.name for p in folder.iterdir() if p.is_dir() and _is_identifier(p.name)]

    def find(self, version: str, prefer: str | None = None) -> Path | None:
        """A kept folder of ``version``, preferring model name ``prefer``."""
        check_identifier(version, "model version")
        names = self.names()
        if prefer in names:
            names.remove(prefer)
            names.insert(0, prefer)
        for name in names:
            candidate = self.path(name, version)
            if candidate.is_dir():
                return candidate
        return None

    def install(self, staged: Path, name: str, version: str) -> Path:
        """Move an unpacked, validated folder into place (replacing a same-version folder)."""
        dest = self.path(name, version)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.exists():
            # Moved aside to be deleted: a power cut can only leave it to the next ensure().
            trash = self.staging / f"old-{uuid.uuid4().hex}"
            os.replace(dest, trash)
            shutil.rmtree(trash, ignore_errors=True)
        replace_durably(staged, dest)
        return dest

    def remove(self, name: str, version: str) -> None:
        if self.active() == (name, version):
            return
        shutil.rmtree(self.path(name, version), ignore_errors=True)

    def active(self) -> tuple[str, str] | None:
        """(name, version) the pointer names, if both are identifiers and that folder still
        exists; a pointer that is unreadable or names no valid folder is logged and is
        None."""
        pointer = self.root / ACTIVE
        try:
            data = json.loads(pointer.read_text())
            folder = self.path(data["name"], data["version"])
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            event(log, logging.ERROR, "model.active_pointer_invalid", file=pointer,
                  error=f"{type(exc).__name__}: {exc}"[:200], action="ignoring it")
            return None
        return (data["name"], data["version"]) if folder.is_dir() else None

    def set_active(self, name: str, version: str) -> None:
        write_atomic(self.root / ACTIVE, json.dumps({
            "name": name, "version": version,
            "activatedAt": datetime.now(UTC).isoformat(timespec="seconds")}))

    def prune(self, name: str, keep: int) -> list[str]:
        """Remove all but the newest ``keep`` versions of ``name``; never the active one."""
        active = self.active()
        versions = self.versions(name)
        removed: list[str] = []
        for version in versions[:max(0, len(versions) - keep)]:
            if active == (name, version):
                continue
            shutil.rmtree(self.path(name, version), ignore_errors=True)
            removed.append(version)
        if removed:
            event(log, logging.INFO, "model.pruned", model=name, versions=",".join(removed))
        return removed
