"""The model update manager: the twin's desired ``model`` in, an active version out.

One worker thread handles the latest desired entry. A newer patch bumps a generation
counter; the running download sees it at its next block, stops, and its partial file is
removed (no half state). A stop of the module keeps the partial file, so the next start
resumes it. Steps: the package serving is the one the twin names -> nothing; a kept package
is -> switch without download (rollback); else download, verify, unpack, install, activate.
Which package the twin names is decided by :func:`~detector_module.updates.identity.is_wanted`
(version and content, never another model's version); a download whose name and version are
installed with other content is refused (versions are immutable).
Every step shows in the reported property ``model`` (the module's status reporter asks
:meth:`ModelManager.status`); activation also sends :class:`ModelActivated` to output
``model``. A failure leaves the old model serving with status ``failed``.

The worker runs under ``runtime.workers``: an unexpected exception is reported as status
``failed``, then raised to the supervisor (logged with its traceback, alerted, the worker
restarted), so the next patch is still handled. The model's trial load is killed as soon as
a newer patch arrives. On IoT Edge (any link but the local one) the twin comes from the
cloud, so file:// URLs are confined to ``model_repository.file_url_dir``.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
import urllib.parse
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from config.detector import DesiredModel, DetectorSettings
from contracts.identifiers import check_identifier
from contracts.messages import ModelActivated
from detector_module.package import PackageError, split_version
from detector_module.trial import Cancelled, TrialCancelled
from detector_module.updates.download import (
    DownloadCancelled,
    DownloadError,
    DownloadOptions,
    Progress,
    discard_partial,
    download,
    safe_url,
)
from detector_module.updates.identity import Content, Installed, is_wanted
from detector_module.updates.repository import Immutable, ModelRepository
from detector_module.updates.unpack import unpack
from detector_module.updates.verify import VerifyError, verify
from edge_link.runtime import ModuleRuntime
from infra.logs import event, redact

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 1.0
MB = 1024 * 1024
MAX_REASON = 500  # characters of a failure reason reported (IoT Hub's patch limit is 32 KB)

# activate(path, name, version, cancelled) -> info dict of the model now serving; raises on
# failure, TrialCancelled once cancelled() is true
Activate = Callable[[Path, str, str, Cancelled], dict[str, Any]]
Serving = Callable[[], tuple[str, str] | None]


class ModelManager:
    """Turns the twin's desired ``model`` into the serving model, on its own thread, so a
    slow download never holds up requests or settings changes."""

    def __init__(self, runtime: ModuleRuntime[DetectorSettings], repository: ModelRepository,
                 activate: Activate, serving: Serving, *,
                 ready: threading.Event | None = None) -> None:
        self.runtime = runtime
        self.repository = repository
        self._activate = activate
        self._serving = serving
        self._ready = ready or threading.Event()
        if ready is None:
            self._ready.set()
        self._lock = threading.Lock()
        self._desired: DesiredModel | None = None
        self._generation = 0
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        #: The reported ``model`` section; replaced whole on every change, never mutated.
        self.state: dict[str, Any] = {}

    # -- public -----------------------------------------------------------------------

    def start(self) -> None:
        self.repository.ensure()
        self._thread = self.runtime.workers.spawn("model-updates", self._run)

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def status(self) -> dict[str, Any]:
        """The ``model`` section of the reported properties, once there is one."""
        return {"model": dict(self.state)} if self.state else {}

    def request(self, desired: DesiredModel, *, retry_failed: bool = False) -> None:
        """The twin's desired ``model`` entry; latest wins.

        The same entry again does nothing, unless ``retry_failed`` and it last failed (e.g.
        after a change of the ``model_repository`` settings)."""
        with self._lock:
            again = retry_failed and self.state.get("status") == "failed"
            if desired == self._desired and not again:
                return
            self._desired = desired
            self._generation += 1
        self._wake.set()

    # -- worker -----------------------------------------------------------------------

    def _run(self) -> None:
        self._ready.wait()
        while self._wake.wait() and not self._stopping.is_set():
            with self._lock:
                self._wake.clear()
                desired, generation = self._desired, self._generation
            try:
                self._handle(desired, generation)
            except Exception as exc:
                self._update(status="failed", error=redact(f"internal error: {exc}")[:MAX_REASON])
                raise

    def _cancelled(self, generation: int) -> Callable[[], bool]:
        return lambda: self._stopping.is_set() or self._generation != generation

    def _set(self, state: dict[str, Any]) -> None:
        self.state = state
        self.runtime.status_changed()

    def _update(self, **fields: object) -> None:
        self._set({**self.state, **fields})

    def _handle(self, desired: DesiredModel | None, generation: int) -> None:
        if desired is None or not desired.version:
            return
        version = str(desired.version)
        serving = self._serving()
        serving_name = serving[0] if serving else None
        if serving is not None and is_wanted(
                Installed(*serving, self.repository.content(*serving)), desired, serving_name):
            event(log, logging.INFO, "model.already_active", model=serving[0], version=version)
            if self.state.get("version") != version or self.state.get("status") != "active":
                self._update(name=serving[0], version=version, status="active", error=None,
                             progress=None)
            return
        kept = next((p for p in self.repository.installed(version)
                     if is_wanted(p, desired, serving_name)), None)
        if kept is not None:
            event(log, logging.INFO, "model.rollback", model=kept.name, version=version)
            self._load(self.repository.path(kept.name, version), kept.name, version,
                       generation, source="repository")
            return
        if not desired.url:
            model = f" of model {serving_name}" if serving_name else ""
            self._fail(version, f"version {version}{model} is not in the repository and the "
                       "twin gives no url")
            return
        self._fetch(desired, desired.url, version, generation)

    def _fail(self, version: str, reason: str, name: str | None = None) -> None:
        """Report a refusal: the reason redacted and bounded (it may quote a package)."""
        reason = redact(reason)[:MAX_REASON]
        event(log, logging.ERROR, "model.update_failed", version=version, error=reason)
        self._update(desiredVersion=version, status="failed", error=reason,
                     progress=None, **({"failedName": name} if name else {}))

    def _fetch(self, desired: DesiredModel, url: str, version: str, generation: int) -> None:
        """Download, verify, unpack and install a version the repository does not have."""
        settings = self.runtime.settings.model_repository
        if not (desired.content_md5 or desired.sha256) and not settings.allow_unverified:
            self._fail(version, "the twin gives no checksum (content_md5 or sha256) and "
                       "model_repository.allow_unverified is false")
            return
        options = DownloadOptions.from_settings(settings, edge=self.runtime.link.kind != "local")
        part = self._download(url, version, generation, options)
        if part is None:
            return
        self._update(status="verifying")
        try:
            md5_b64, sha_hex = verify(part, content_md5=desired.content_md5,
                                      sha256=desired.sha256,
                                      allow_unverified=settings.allow_unverified)
        except VerifyError as exc:
            discard_partial(self.repository.downloads, url, version)
            self._fail(version, str(exc))
            return
        try:
            installed = self._install(part, Content(sha256=sha_hex, content_md5=md5_b64),
                                      desired, url, version, generation)
        finally:
            discard_partial(self.repository.downloads, url, version)
        if installed is not None:
            path, fresh = installed
            self._load(path, path.parent.name, version, generation, source=safe_url(url),
                       fresh=fresh)

    def _download(self, url: str, version: str, generation: int,
                  options: DownloadOptions) -> Path | None:
        """The complete file; None when superseded, stopped (the partial file is kept for
        the next start) or failed (reported)."""
        self._update(desiredVersion=version, status="downloading", error=None,
                     progress={"bytes": 0, "total": None})
        started = time.monotonic()
        try:
            part = download(url, self.repository.downloads, version=version, options=options,
                            cancelled=self._cancelled(generation), progress=self._progress(url))
        except DownloadCancelled:
            if not self._stopping.is_set():  # superseded: leave nothing half-done behind
                discard_partial(self.repository.downloads, url, version)
                event(log, logging.INFO, "model.download_superseded", version=version)
            return None
        except DownloadError as exc:
            discard_partial(self.repository.downloads, url, version)
            self._fail(version, str(exc))
            return None
        event(log, logging.INFO, "model.downloaded", url=safe_url(url), version=version,
              bytes=part.stat().st_size, seconds=round(time.monotonic() - started, 2))
        return part

    def _progress(self, url: str) -> Progress:
        """Download progress in the reported properties and the log, at most once a second
        (and at the end), so a metered link is not spent on progress reports."""
        last = 0.0

        def progress(have: int, total: int | None) -> None:
            nonlocal last
            now = time.monotonic()
            if now - last >= PROGRESS_EVERY_S or (total is not None and have >= total):
                last = now
                self._update(progress={"bytes": have, "total": total})
                event(log, logging.INFO, "model.download_progress", url=safe_url(url),
                      bytes=have, total=total)
        return progress

    def _install(self, part: Path, content: Content, desired: DesiredModel, url: str,
                 version: str, generation: int) -> tuple[Path, bool] | None:
        """Unpack into staging and move into the repository: the folder and whether it is new
        (False: that very package was there); None if refused or superseded."""
        settings = self.runtime.settings.model_repository
        staged = self.repository.new_staging()
        try:
            package = unpack(part, staged, max_bytes=int(settings.max_package_mb * MB))
            name = package.manifest.name or _name_hint(desired.file_name, url)
            if package.manifest.version and package.manifest.version != version:
                raise PackageError(f"the package is version {package.manifest.version}, the "
                                   f"twin asks for {version}")
            if self._cancelled(generation)():
                return None
            fresh = not self.repository.path(name, version).is_dir()
            return self.repository.install(staged, name, version, content), fresh
        except Immutable as exc:
            self._fail(version, str(exc), name)
            return None
        except (PackageError, ValueError, OSError) as exc:
            self._fail(version, f"bad package: {exc}")
            return None
        finally:
            shutil.rmtree(staged, ignore_errors=True)

    def _load(self, path: Path, name: str, version: str, generation: int, *, source: str,
              fresh: bool = False) -> None:
        """Activate a repository folder; a fresh install that does not load is removed."""
        if self._cancelled(generation)():
            if fresh:
                self.repository.remove(name, version)
            return
        self._update(name=name, desiredVersion=version, status="loading", error=None,
                     progress=None)
        try:
            info = self._activate(path, name, version, self._cancelled(generation))
        except TrialCancelled:
            if fresh:
                self.repository.remove(name, version)
            return
        except Exception as exc:  # noqa: BLE001 - any load failure keeps the old model
            if fresh:
                self.repository.remove(name, version)
            self._fail(version, f"model failed to load: {exc}", name)
            return
        self.repository.set_active(name, version)
        self.repository.prune(name, self.runtime.settings.model_repository.keep_versions)
        activated = datetime.now(UTC).isoformat(timespec="seconds")
        self._set({"name": name, "version": version, "desiredVersion": version,
                   "format": info.get("format"), "status": "active", "progress": None,
                   "error": None, "activatedAt": activated,
                   "providers": info.get("providers")})
        try:
            self.runtime.send(ModelActivated(
                name=name, version=version, format=info.get("format"), activated_at=activated,
                source=source, providers=info.get("providers")))
        except Exception as exc:  # noqa: BLE001 - a missing route must not undo the swap
            event(log, logging.WARNING, "model.message_failed", error=str(exc))
        event(log, logging.INFO, "model.activated", model=name, version=version, source=source)


def _name_hint(file_name: str | None, url: str) -> str:
    """A model name from the zip's file name (``graffiti-1.1.zip``) when its manifest has
    none; BadIdentifier (a ValueError) when that is not an identifier."""
    base = file_name or PurePosixPath(urllib.parse.urlsplit(url).path).name
    stem = base[:-4] if base.lower().endswith(".zip") else base
    return check_identifier(split_version(stem)[0] or "model", "model name from the file name")
