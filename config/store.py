"""The settings in force for one module, rebuilt from its sources and swapped atomically.

All changes, from a twin patch or an edit of the local YAML stand-in, go through
:meth:`SettingsStore.apply_patch`: merge into the twin layer, validate the whole document,
then commit or reject as a whole. Subscribers see only validated, complete settings.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import ValidationError

from config.errors import FieldError, SettingsRejected, errors_from_validation
from config.fields import Section, restart_required_paths
from config.layers import Doc, has_path, merge, strip_metadata
from infra.durable import write_atomic
from infra.logs import event

S = TypeVar("S", bound=Section)
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """What became of one proposed change."""

    accepted: bool
    version: int | None
    changed: tuple[str, ...] = ()
    restart_required: tuple[str, ...] = ()
    errors: tuple[FieldError, ...] = ()


Listener = Callable[[S, S, tuple[str, ...]], None]


def changed_paths(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted paths of the leaves that differ between two settings dumps."""
    paths: list[str] = []
    for key in sorted(old.keys() | new.keys()):
        a, b = old.get(key), new.get(key)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            paths += changed_paths(a, b, f"{prefix}{key}.")
        elif a != b:
            paths.append(f"{prefix}{key}")
    return paths


@dataclass
class _Rejection:
    version: int | None
    errors: tuple[FieldError, ...]
    at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))


class SettingsStore(Generic[S]):
    """Validated settings from defaults < file < environment < twin, with live updates."""

    def __init__(
        self,
        model: type[S],
        *,
        file_layer: Doc | None = None,
        env_layer: Doc | None = None,
        file_source: str = "file",
        last_good_path: Path | None = None,
    ) -> None:
        self.model = model
        self._lower: list[tuple[str, Doc]] = [
            (file_source, file_layer or {}),
            ("env", env_layer or {}),
        ]
        self._restart_paths = restart_required_paths(model)
        self._last_good_path = last_good_path
        self._lock = threading.RLock()
        self._listeners: list[Listener[S]] = []
        self._twin: Doc = {}
        self._version: int | None = None
        self._started: dict[str, Any] | None = None
        self._rejection: _Rejection | None = None
        self._current: S = self._build({})

    @property
    def current(self) -> S:
        """The settings in force: always a complete, validated, immutable object."""
        return self._current

    @property
    def version(self) -> int | None:
        """The twin ``$version`` of the last applied change."""
        return self._version

    def mark_started(self) -> None:
        """Snapshot the settings the module was built with; restart-only fields compare to it."""
        with self._lock:
            self._started = self._current.model_dump(mode="json")

    def restart_required(self) -> list[str]:
        """Restart-only fields whose value differs from the one the module started with."""
        with self._lock:
            if self._started is None:
                return []
            now = self._current.model_dump(mode="json")
            return sorted(p for p in changed_paths(self._started, now) if p in self._restart_paths)

    def subscribe(self, listener: Listener[S]) -> None:
        """Call ``listener(old, new, changed_paths)`` after every applied change."""
        with self._lock:
            self._listeners.append(listener)

    def replace_twin(self, desired: Mapping[str, Any], source: str = "twin") -> Outcome:
        """Take a full desired document (start-up, reconnect). Falls back to the last good one."""
        with self._lock:
            version = desired.get("$version")
            outcome = self._propose(strip_metadata(desired), version, source)
            if not outcome.accepted and not self._twin and self.restore_last_good():
                self._rejection = _Rejection(version, outcome.errors)
            return outcome

    def restore_last_good(self) -> bool:
        """Run on the twin layer saved by the last applied change (offline or bad twin at boot)."""
        with self._lock:
            saved = self._load_last_good()
            if saved is None:
                return False
            event(log, logging.WARNING, "settings.last_good_restored",
                  version=saved.get("version"))
            return self._propose(saved.get("twin", {}), saved.get("version"), "last-good").accepted

    def record_rejection(self, errors: list[FieldError], version: int | None = None) -> None:
        """Report a change that never reached validation (e.g. a local file that is not YAML)."""
        with self._lock:
            self._rejection = _Rejection(version, tuple(errors))
            event(log, logging.WARNING, "settings.rejected", version=version,
                  errors="; ".join(str(e) for e in errors))

    def apply_patch(self, patch: Mapping[str, Any], source: str = "twin") -> Outcome:
        """Merge a desired-properties patch; ``null`` removes a key. All or nothing."""
        with self._lock:
            candidate = merge(self._twin, strip_metadata(patch))
            return self._propose(candidate, patch.get("$version"), source)

    def report(self) -> dict[str, Any]:
        """Reported-properties view: what is in force, what was rejected, what needs a restart."""
        with self._lock:
            report: dict[str, Any] = {
                "status": "rejected" if self._rejection else "applied",
                "version": self._version,
                "inForce": self._current.model_dump(mode="json"),
                "restartRequired": self.restart_required(),
                "rejected": None,
            }
            if self._rejection:
                report["rejected"] = {
                    "version": self._rejection.version,
                    "at": self._rejection.at,
                    "errors": [e.as_dict() for e in self._rejection.errors],
                }
            return report

    def _build(self, twin: Doc) -> S:
        layers = [*self._lower, ("twin", twin)]
        doc: Doc = {}
        for _, layer in layers:
            doc = merge(doc, layer)
        try:
            return self.model.model_validate(doc)
        except ValidationError as exc:
            errors = [
                FieldError(e.path, e.reason, e.value, source=_source_of(e.path, layers))
                for e in errors_from_validation(exc, self.model)
            ]
            raise SettingsRejected(errors) from None

    def _propose(self, twin: Doc, version: int | None, source: str) -> Outcome:
        try:
            new = self._build(twin)
        except SettingsRejected as exc:
            errors = tuple(
                FieldError(e.path, e.reason, e.value, source=source if e.source == "twin"
                           else e.source)
                for e in exc.errors
            )
            self._rejection = _Rejection(version, errors)
            event(log, logging.WARNING, "settings.rejected", source=source, version=version,
                  errors="; ".join(str(e) for e in errors))
            return Outcome(False, version, errors=errors)
        old = self._current
        # Python mode: a JSON dump masks secrets, which would hide a rotated key.
        changed = tuple(changed_paths(old.model_dump(), new.model_dump()))
        # Before the module has started, nothing runs on the old values: no restart needed.
        restart = tuple(p for p in changed
                        if p in self._restart_paths and self._started is not None)
        self._twin, self._current, self._rejection = twin, new, None
        if version is not None:
            self._version = version
        event(log, logging.INFO, "settings.applied", source=source, version=version,
              changed=",".join(changed) or "-")
        if restart:
            event(log, logging.WARNING, "settings.restart_required", fields=",".join(restart))
        self._save_last_good()
        if changed:
            for listener in list(self._listeners):
                try:
                    listener(old, new, changed)
                except Exception:
                    log.exception("settings.listener_failed listener=%r", listener)
        return Outcome(True, version, changed, restart)

    def _save_last_good(self) -> None:
        if self._last_good_path is None:
            return
        path = self._last_good_path
        try:
            # Owner-only: a connection string set through the twin is part of this layer.
            write_atomic(path, json.dumps({"version": self._version, "twin": self._twin}),
                         mode=0o600)
        except OSError as exc:
            event(log, logging.WARNING, "settings.last_good_not_saved", path=path, error=exc)

    def _load_last_good(self) -> dict[str, Any] | None:
        if self._last_good_path is None or not self._last_good_path.exists():
            return None
        try:
            data = json.loads(self._last_good_path.read_text())
        except (OSError, ValueError) as exc:
            event(log, logging.WARNING, "settings.last_good_unreadable",
                  path=self._last_good_path, error=exc)
            return None
        return data if isinstance(data, dict) else None


def _source_of(path: str, layers: list[tuple[str, Doc]]) -> str:
    """The highest layer that sets ``path`` (or a parent of it): where a bad value came from."""
    parts = path.split(".")
    for name, layer in reversed(layers):
        for depth in range(len(parts), 0, -1):
            if has_path(layer, ".".join(parts[:depth])):
                return name
    return "defaults"
