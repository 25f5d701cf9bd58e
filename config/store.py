"""The settings in force for one module, rebuilt from its sources and swapped atomically.

Every change goes through this store, by one of two rules:

* a **patch** (a desired-properties patch, or one edit of the local YAML stand-in) is merged
  into the twin layer and validated as a whole: it applies whole or not at all, so a half-right
  edit never runs;
* a **full desired document** (start-up, every reconnect) is applied field by field: a value
  that does not validate keeps the value in force (at start-up, the last good one) and is named
  in the rejection, and the rest applies, so one bad value left in the twin never blocks a good
  change elsewhere in it.

Documents are checked before anything walks them (:func:`config.layers.check_document`), a
``$version`` older than one already seen is ignored, and a rejection quotes short excerpts only,
so the reported properties stay small whatever the twin holds.
"""

from __future__ import annotations

import copy
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
from config.layers import Doc, check_document, has_path, merge, strip_metadata
from config.paths import under_data_dir
from infra.durable import write_atomic
from infra.logs import event

S = TypeVar("S", bound=Section)
log = logging.getLogger(__name__)

#: Errors a report or a log line lists; the rest are counted.
MAX_LISTED_ERRORS = 10
# A full document whose bad fields are still not all cut out after this many rounds (each round
# cuts every field named) is refused whole.
_REPAIR_ROUNDS = 4

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Outcome:
    """What became of one proposed change. ``stale``: ignored for an old ``$version``."""

    accepted: bool
    version: int | None
    changed: tuple[str, ...] = ()
    restart_required: tuple[str, ...] = ()
    errors: tuple[FieldError, ...] = ()
    stale: bool = False


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
    # True when the rest of a full document was applied; False when nothing of the change was.
    partial: bool = False
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
        data_dir: Path | None = None,
    ) -> None:
        """``data_dir``: the module's --data-dir, under which relative folder settings lie
        (:mod:`config.paths`); None leaves them as given (a file checked on its own)."""
        self.model = model
        self._data_dir = data_dir
        self._lower: list[tuple[str, Doc]] = [
            (file_source, file_layer or {}),
            ("env", env_layer or {}),
        ]
        self._restart_paths = restart_required_paths(model)
        self._last_good_path = last_good_path
        self._lock = threading.RLock()
        self._listeners: list[Listener[S]] = []
        self._twin: Doc = {}
        self._committed = False
        self._version: int | None = None
        # Highest $version seen from the link in this process (the saved last good one may
        # come from another twin: a module identity made anew starts again at 1).
        self._seen_version: int | None = None
        self._started: dict[str, Any] | None = None
        self._rejection: _Rejection | None = None
        new, errors, _ = self._try_build({})
        if new is None:
            raise SettingsRejected(errors)
        self._current: S = new

    @property
    def current(self) -> S:
        """The settings in force: always a complete, validated, immutable object."""
        return self._current

    @property
    def version(self) -> int | None:
        """The twin ``$version`` of the last change applied (in whole or in part)."""
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
        """Take a full desired document (start-up, reconnect), field by field; see the module
        docstring. When nothing of it can apply and nothing has been applied yet, the module
        runs on its last good twin layer."""
        with self._lock:
            version = _version_of(desired)
            problems = check_document(desired, source)
            if problems:
                return self._refused_at_boot(self._refuse(version, problems, source))
            if self._is_stale(version, full=True):
                return Outcome(False, version, stale=True)
            basis = self._twin if self._committed else self._saved_twin()
            candidate, new, dropped = self._repair(strip_metadata(desired), basis)
            if new is None or (dropped and candidate == basis):
                return self._refused_at_boot(self._refuse(version, dropped, source))
            outcome = self._commit(candidate, new, version, source)
            if dropped:
                self._rejection = _Rejection(version, tuple(dropped), partial=True)
                self._log_rejection(self._rejection, source)
            return outcome

    def restore_last_good(self) -> bool:
        """Run on the twin layer saved by the last applied change (offline or bad twin at boot).
        A rejection already recorded stays reported: falling back is not a change applied."""
        with self._lock:
            saved = self._load_last_good()
            if saved is None:
                return False
            event(log, logging.WARNING, "settings.last_good_restored", version=saved[1])
            new, errors, _ = self._try_build(saved[0])
            if new is None:
                self._refuse(saved[1], errors, "last-good")
                return False
            rejection = self._rejection
            self._commit(saved[0], new, saved[1], "last-good")
            self._rejection = rejection
            return True

    def record_rejection(self, errors: list[FieldError], version: int | None = None) -> None:
        """Report a change that never reached validation (e.g. a local file that is not YAML)."""
        with self._lock:
            self._rejection = _Rejection(version, tuple(errors))
            self._log_rejection(self._rejection, "file")

    def apply_patch(self, patch: Mapping[str, Any], source: str = "twin") -> Outcome:
        """Merge a desired-properties patch; ``null`` removes a key. All or nothing."""
        with self._lock:
            version = _version_of(patch)
            problems = check_document(patch, source)
            if problems:
                return self._refuse(version, problems, source)
            if self._is_stale(version, full=False):
                return Outcome(False, version, stale=True)
            candidate = merge(self._twin, strip_metadata(patch))
            new, errors, _ = self._try_build(candidate)
            if new is None:
                return self._refuse(version, errors, source)
            return self._commit(candidate, new, version, source)

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
                errors = self._rejection.errors
                report["rejected"] = {
                    "version": self._rejection.version,
                    "at": self._rejection.at,
                    "partial": self._rejection.partial,
                    "errors": [e.as_dict() for e in errors[:MAX_LISTED_ERRORS]],
                    "more": max(0, len(errors) - MAX_LISTED_ERRORS),
                }
            return report

    def _is_stale(self, version: int | None, *, full: bool) -> bool:
        """Whether a document is older than one already seen from the link (a twin read that
        crossed a patch, a patch delivered twice); a full read of the same version is not."""
        seen = self._seen_version
        if version is None or seen is None or version > seen or (full and version == seen):
            self._seen_version = version if version is not None else seen
            return False
        event(log, logging.WARNING, "settings.stale_ignored", version=version, seen=seen,
              kind="document" if full else "patch")
        return True

    def _try_build(self, twin: Doc) -> tuple[S | None, list[FieldError], list[Loc]]:
        """The settings ``twin`` gives over the lower layers, or the errors (with where each
        bad value sits, unabridged, for :meth:`_repair`)."""
        layers = [*self._lower, ("twin", twin)]
        doc: Doc = {}
        for _, layer in layers:
            doc = merge(doc, layer)
        try:
            settings = self.model.model_validate(doc)
        except ValidationError as exc:
            locs: list[Loc] = [tuple(e["loc"]) for e in exc.errors(include_url=False)]
            errors = [
                FieldError(e.path, e.reason, e.value, source=_source_of(loc, layers))
                for e, loc in zip(errors_from_validation(exc, self.model), locs, strict=True)
            ]
            return None, errors, locs
        if self._data_dir is not None:
            settings = under_data_dir(settings, self._data_dir)
        return settings, [], []

    def _repair(self, candidate: Doc, basis: Doc) -> tuple[Doc, S | None, list[FieldError]]:
        """``candidate`` with every field that does not validate put back to its value in
        ``basis`` (or removed when ``basis`` has none), and the errors of those fields."""
        dropped: list[FieldError] = []
        for _ in range(_REPAIR_ROUNDS):
            new, errors, locs = self._try_build(candidate)
            if new is not None:
                return candidate, new, dropped
            dropped += errors
            repaired = copy.deepcopy(candidate)
            if not all(_put_back(repaired, loc, basis) for loc in locs):
                break
            candidate = repaired
        return candidate, None, dropped

    def _refuse(self, version: int | None, errors: list[FieldError], source: str) -> Outcome:
        self._rejection = _Rejection(version, tuple(
            FieldError(e.path, e.reason, e.value, source=source if e.source == "twin"
                       else e.source, line=e.line)
            for e in errors))
        self._log_rejection(self._rejection, source)
        return Outcome(False, version, errors=self._rejection.errors)

    def _refused_at_boot(self, outcome: Outcome) -> Outcome:
        """Nothing applied yet and the twin is refused: run on the last good twin layer."""
        if not self._committed:
            self.restore_last_good()
        return outcome

    def _log_rejection(self, rejection: _Rejection, source: str) -> None:
        errors = rejection.errors
        listed = "; ".join(str(e) for e in errors[:MAX_LISTED_ERRORS])
        more = len(errors) - MAX_LISTED_ERRORS
        event(log, logging.WARNING, "settings.rejected", source=source,
              version=rejection.version, partial=rejection.partial,
              errors=listed + (f"; and {more} more" if more > 0 else ""))

    def _commit(self, twin: Doc, new: S, version: int | None, source: str) -> Outcome:
        old = self._current
        # Python mode: a JSON dump masks secrets, which would hide a rotated key.
        changed = tuple(changed_paths(old.model_dump(), new.model_dump()))
        # Before the module has started, nothing runs on the old values: no restart needed.
        restart = tuple(p for p in changed
                        if p in self._restart_paths and self._started is not None)
        self._twin, self._current, self._rejection = twin, new, None
        self._committed = True
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

    def _saved_twin(self) -> Doc:
        saved = self._load_last_good()
        return saved[0] if saved is not None else {}

    def _load_last_good(self) -> tuple[Doc, int | None] | None:
        """The saved twin layer and its version; None when there is none that can be used."""
        path = self._last_good_path
        if path is None or not path.exists():
            return None
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError, RecursionError) as exc:
            event(log, logging.WARNING, "settings.last_good_unreadable", path=path,
                  error=type(exc).__name__)
            return None
        twin = data.get("twin") if isinstance(data, dict) else None
        if not isinstance(twin, dict) or check_document(twin):
            event(log, logging.WARNING, "settings.last_good_unreadable", path=path,
                  error="not a settings document")
            return None
        return twin, _version_of(data)


def _version_of(doc: Mapping[str, Any]) -> int | None:
    """A document's ``$version`` (``version`` in a saved last good file), if it is a number."""
    version = doc.get("$version", doc.get("version"))
    return version if isinstance(version, int) and not isinstance(version, bool) else None


def _put_back(doc: Doc, loc: Loc, basis: Doc) -> bool:
    """Put the value at ``loc`` back to the one in ``basis`` (remove it when ``basis`` has
    none); a value inside a list puts back the whole list, as twin lists replace whole. False
    when ``loc`` names nothing in ``doc`` (a document-level error), so nothing can be cut."""
    keys: list[str] = []
    node: Any = doc
    for part in loc:
        if not isinstance(node, dict) or part not in node:
            break
        keys.append(str(part))
        node = node[part]
    if not keys:
        return False
    parent: Any = doc
    for key in keys[:-1]:
        parent = parent[key]
    kept: Any = basis
    for key in keys:
        kept = kept.get(key) if isinstance(kept, dict) else None
    if kept is None:
        del parent[keys[-1]]
    else:
        parent[keys[-1]] = copy.deepcopy(kept)
    return True


def _source_of(loc: Loc, layers: list[tuple[str, Doc]]) -> str:
    """The highest layer that sets ``loc`` (or a parent of it): where a bad value came from."""
    parts = [str(p) for p in loc]
    for name, layer in reversed(layers):
        for depth in range(len(parts), 0, -1):
            if has_path(layer, ".".join(parts[:depth])):
                return name
    return "defaults"
