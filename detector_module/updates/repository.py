"""The local model repository: ``<root>/<name>/<version>/`` plus an atomic active pointer.

``active.json`` names the active version; it is written with :func:`infra.durable.write_atomic`,
so a power cut leaves either the old or the new pointer. A version folder is renamed into place
only once its files are on the disk, so the pointer never names a half-written model. Partial
downloads live in ``.downloads/``, unpacking in ``.staging/``; both are ignored as versions.
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

from infra.durable import replace_durably, write_atomic
from infra.logs import event

log = logging.getLogger(__name__)

ACTIVE = "active.json"
_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")


def _version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"[.+-]", version))


def safe_part(value: str, what: str) -> str:
    if not _SAFE.match(value) or value in (".", ".."):
        raise ValueError(f"{what} {value!r} is not usable as a folder name")
    return value


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
        return self.root / safe_part(name, "model name") / safe_part(version, "version")

    def new_staging(self) -> Path:
        self.staging.mkdir(parents=True, exist_ok=True)
        return self.staging / uuid.uuid4().hex

    def versions(self, name: str) -> list[str]:
        folder = self.root / name
        if not folder.is_dir():
            return []
        return sorted((p.name for p in folder.iterdir() if p.is_dir()
                       and not p.name.startswith(".")), key=_version_key)

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir()
                      and not p.name.startswith("."))

    def find(self, version: str, prefer: str | None = None) -> Path | None:
        """A kept folder of ``version``, preferring model name ``prefer``."""
        names = self.names()
        if prefer in names:
            names.remove(prefer)
            names.insert(0, prefer)
        for name in names:
            candidate = self.root / name / version
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
        """(name, version) the pointer names, if that folder still exists."""
        try:
            data = json.loads((self.root / ACTIVE).read_text())
            name, version = str(data["name"]), str(data["version"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return (name, version) if self.path(name, version).is_dir() else None

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
            shutil.rmtree(self.root / name / version, ignore_errors=True)
            removed.append(version)
        if removed:
            event(log, logging.INFO, "model.pruned", model=name, versions=",".join(removed))
        return removed
