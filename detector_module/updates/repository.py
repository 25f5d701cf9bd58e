"""The local model repository: ``<root>/<name>/<version>/`` plus an atomic active pointer.

``active.json`` names the active version; it is written with :func:`infra.durable.write_atomic`,
so a power cut leaves either the old or the new pointer. A version folder is renamed into place
only once its files are on the disk, so the pointer never names a half-written model. Partial
downloads live in ``.downloads/``, unpacking in ``.staging/``, content records in
``.content/``; none is a model name.

A version is immutable: ``.content/<name>/<version>.json`` records the checksums of the zip
it came from (:class:`~detector_module.updates.identity.Content`), written atomically before
the version folder is renamed into place; installing that name and version
again with other content is refused (:class:`Immutable`), the same content is the folder
already there. A version installed before records were kept has none: it is known by its
name and version alone (its zip is gone, so its checksum cannot be computed), and nothing
can be installed over it either.

Names and versions are identifiers (:func:`contracts.identifiers.check_identifier`) before they
become a path, and so is what is read back: an ``active.json`` naming ``../x`` or ``/etc`` (or
holding no JSON at all) is reported once and read as "no active version", so the detector
boots the bundled sample instead of failing; a folder whose name is not an identifier is not
a version.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from contracts.identifiers import check_identifier, is_identifier
from detector_module.updates.identity import Content, Installed
from infra.durable import replace_durably, write_atomic
from infra.logs import event

log = logging.getLogger(__name__)

ACTIVE = "active.json"
T = TypeVar("T")


class Immutable(ValueError):
    """That name and version are installed already, with other (or unrecorded) content."""


def _version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"[._-]", version))


def _read_state(path: Path, invalid: str, parse: Callable[[str], T]) -> T | None:
    """``parse`` of a small state file; None when it is missing, or when it cannot be read or
    parsed (logged as ``invalid``: the caller goes on as if there were none)."""
    try:
        return parse(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        event(log, logging.ERROR, invalid, file=path, error=f"{type(exc).__name__}: {exc}"[:200],
              action="ignoring it")
        return None


class ModelRepository:
    """Versions kept on the module's volume, so a restart without network still boots the
    active one and a rollback needs no download."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.downloads = root / ".downloads"
        self.staging = root / ".staging"
        self.records = root / ".content"

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
        return [p.name for p in folder.iterdir() if p.is_dir() and is_identifier(p.name)]

    def installed(self, version: str) -> list[Installed]:
        """Every kept package of ``version``, whatever its model name."""
        check_identifier(version, "model version")
        return [Installed(name, version, self.content(name, version)) for name in self.names()
                if self.path(name, version).is_dir()]

    def content(self, name: str, version: str) -> Content | None:
        """The recorded content of a kept version; None when it has no record (or one that
        cannot be read: logged, and the version is then known by name and version)."""
        return _read_state(self._record(name, version), "model.content_record_invalid",
                           Content.from_json)

    def install(self, staged: Path, name: str, version: str,
                content: Content | None = None) -> Path:
        """Move an unpacked, validated folder into place with the record of its ``content``
        (None records nothing); the folder already there when that version has the same
        content; :class:`Immutable` when it has other content or none recorded."""
        dest = self.path(name, version)
        if dest.is_dir():
            kept = self.content(name, version)
            if content is not None and kept == content:
                return dest
            what = ("with different content" if kept is not None else
                    "from before content was recorded, so its content cannot be compared")
            raise Immutable(f"version {version} is already installed {what}; versions are "
                            "immutable")
        dest.parent.mkdir(parents=True, exist_ok=True)
        record = self._record(name, version)
        if content is None:
            record.unlink(missing_ok=True)
        else:
            write_atomic(record, content.to_json())
        replace_durably(staged, dest)
        return dest

    def remove(self, name: str, version: str) -> None:
        if self.active() == (name, version):
            return
        self._delete(name, version)

    def _delete(self, name: str, version: str) -> None:
        """The folder first: a record left by a power cut names no version and is replaced
        by the next install of that version."""
        shutil.rmtree(self.path(name, version), ignore_errors=True)
        self._record(name, version).unlink(missing_ok=True)

    def _record(self, name: str, version: str) -> Path:
        folder = self.path(name, version)
        return self.records / folder.parent.name / f"{folder.name}.json"

    def active(self) -> tuple[str, str] | None:
        """(name, version) the pointer names, if both are identifiers and that folder still
        exists; a pointer that is unreadable or names no valid folder is logged and is
        None."""
        def parse(text: str) -> tuple[str, str]:
            data = json.loads(text)
            self.path(data["name"], data["version"])  # both identifiers, or BadIdentifier
            return data["name"], data["version"]

        active = _read_state(self.root / ACTIVE, "model.active_pointer_invalid", parse)
        return active if active is not None and self.path(*active).is_dir() else None

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
            self._delete(name, version)
            removed.append(version)
        if removed:
            event(log, logging.INFO, "model.pruned", model=name, versions=",".join(removed))
        return removed
