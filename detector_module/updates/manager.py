"""The model update manager: the twin's desired ``model`` in, an active version out.

One worker thread handles the latest desired entry. A newer patch bumps a generation
counter; the running download sees it at its next block, stops, and its partial file is
removed (no half state). A stop of the module keeps the partial file, so the next start
resumes it. Steps: same version as serving -> nothing; version kept in the repository ->
switch without download (rollback); else download, verify, unpack, install, activate.
Every step is reported under the reported property ``model``; activation also sends a
message to output ``model``. A failure leaves the old model serving with status ``failed``.
"""

from __future__ import annotations

import logging
import re
import shutil
import threading
import time
import urllib.parse
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from detector_module.package import PackageError
from detector_module.updates.download import (
    DownloadCancelled,
    DownloadError,
    DownloadOptions,
    discard_partial,
    download,
    safe_url,
)
from detector_module.updates.repository import ModelRepository
from detector_module.updates.unpack import unpack
from detector_module.updates.verify import VerifyError, verify
from infra.logs import event, redact

log = logging.getLogger(__name__)

_VERSIONED = re.compile(r"^(?P<name>.+?)[-_]v?(?P<version>\d+(\.\d+)*)$")
PROGRESS_EVERY_S = 1.0

# activate(path, name, version) -> info dict of the model now serving; raises on failure
Activate = Callable[[Path, str, str], dict[str, Any]]
Serving = Callable[[], tuple[str, str] | None]


class ModelManager:
    def __init__(self, runtime: Any, repository: ModelRepository, activate: Activate,
                 serving: Serving, *, ready: threading.Event | None = None) -> None:
        self.runtime = runtime
        self.repository = repository
        self._activate = activate
        self._serving = serving
        self._ready = ready or threading.Event()
        if ready is None:
            self._ready.set()
        self._lock = threading.Lock()
        self._desired: Any = None
        self._generation = 0
        self._handled: Any = object()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="model-updates", daemon=True)
        self.status: dict[str, Any] = {}
        self.busy = False

    # -- public -----------------------------------------------------------------------

    def start(self) -> None:
        self.repository.ensure()
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def request(self, desired: Any, *, retry_failed: bool = False) -> None:
        """A desired ``model`` entry (config.detector.DesiredModel); latest wins.

        The same entry again does nothing, unless ``retry_failed`` and it last failed (e.g.
        after a change of the ``model_repository`` settings)."""
        with self._lock:
            again = retry_failed and self.status.get("status") == "failed"
            if desired == self._desired and not again:
                return
            self._desired = desired
            self._generation += 1
        self._wake.set()

    def idle(self) -> bool:
        with self._lock:
            return not self.busy and not self._wake.is_set()

    # -- worker -----------------------------------------------------------------------

    def _run(self) -> None:
        self._ready.wait()
        while not self._stopping.is_set():
            self._wake.wait()
            if self._stopping.is_set():
                return
            with self._lock:
                self._wake.clear()
                desired, generation = self._desired, self._generation
                self.busy = True
            try:
                self._handle(desired, generation)
            except Exception as exc:  # noqa: BLE001 - the worker must survive anything
                event(log, logging.ERROR, "model.update_crashed", error=redact(str(exc)))
                self._report(status="failed", error=f"internal error: {exc}")
            finally:
                with self._lock:
                    self.busy = False

    def _cancelled(self, generation: int) -> Callable[[], bool]:
        return lambda: self._stopping.is_set() or self._generation != generation

    def _report(self, **fields: Any) -> None:
        self.status = {**self.status, **fields}
        self.runtime.report("model", dict(self.status))

    def _handle(self, desired: Any, generation: int) -> None:
        if desired is None or not desired.version:
            return
        version = str(desired.version)
        serving = self._serving()
        if serving is not None and serving[1] == version:
            event(log, logging.INFO, "model.already_active", model=serving[0], version=version)
            if self.status.get("version") != version or self.status.get("status") != "active":
                self._report(name=serving[0], version=version, status="active", error=None,
                             progress=None)
            return
        kept = self.repository.find(version, prefer=serving[0] if serving else None)
        if kept is not None:
            event(log, logging.INFO, "model.rollback", model=kept.parent.name, version=version)
            self._load(kept, kept.parent.name, version, generation, source="repository")
            return
        if not desired.url:
            self._fail(version, f"version {version} is not in the repository and the twin "
                       "gives no url")
            return
        self._fetch(desired, version, generation)

    def _fail(self, version: str, reason: str, name: str | None = None) -> None:
        event(log, logging.ERROR, "model.update_failed", version=version, error=redact(reason))
        self._report(desiredVersion=version, status="failed", error=redact(reason),
                     progress=None, **({"failedName": name} if name else {}))

    def _fetch(self, desired: Any, version: str, generation: int) -> None:
        settings = self.runtime.settings.model_repository
        options = DownloadOptions(
            connect_timeout_s=settings.connect_timeout_s, read_timeout_s=settings.read_timeout_s,
            bandwidth_kbps=settings.bandwidth_kbps, backoff_initial_s=settings.retry.initial_s,
            backoff_max_s=settings.retry.max_s)
        url = desired.url
        cancelled = self._cancelled(generation)
        if not (desired.content_md5 or desired.sha256) and not settings.allow_unverified:
            self._fail(version, "the twin gives no checksum (content_md5 or sha256) and "
                       "model_repository.allow_unverified is false")
            return
        self._report(desiredVersion=version, status="downloading", error=None,
                     progress={"bytes": 0, "total": None})
        last = [0.0]

        def progress(have: int, total: int | None) -> None:
            now = time.monotonic()
            if now - last[0] >= PROGRESS_EVERY_S or (total is not None and have >= total):
                last[0] = now
                self._report(progress={"bytes": have, "total": total})
                event(log, logging.INFO, "model.download_progress", url=safe_url(url),
                      bytes=have, total=total)

        started = time.monotonic()
        try:
            part = download(url, self.repository.downloads, version=version, options=options,
                            cancelled=cancelled, progress=progress)
        except DownloadCancelled:
            if not self._stopping.is_set():  # superseded: leave nothing half-done behind
                discard_partial(self.repository.downloads, url, version)
                event(log, logging.INFO, "model.download_superseded", version=version)
            return
        except DownloadError as exc:
            discard_partial(self.repository.downloads, url, version)
            self._fail(version, str(exc))
            return
        event(log, logging.INFO, "model.downloaded", url=safe_url(url), version=version,
              bytes=part.stat().st_size, seconds=round(time.monotonic() - started, 2))
        self._report(status="verifying")
        try:
            verify(part, content_md5=desired.content_md5, sha256=desired.sha256,
                   allow_unverified=settings.allow_unverified)
        except VerifyError as exc:
            discard_partial(self.repository.downloads, url, version)
            self._fail(version, str(exc))
            return
        staged = self.repository.new_staging()
        try:
            package = unpack(part, staged, max_bytes=int(settings.max_package_mb * 1024 * 1024))
            name = package.manifest.name or self._name_hint(desired)
            if package.manifest.version and package.manifest.version != version:
                raise PackageError(f"the package is version {package.manifest.version}, the "
                                   f"twin asks for {version}")
            if cancelled():
                return
            path = self.repository.install(staged, name, version)
        except (PackageError, ValueError, OSError) as exc:
            self._fail(version, f"bad package: {exc}")
            return
        finally:
            discard_partial(self.repository.downloads, url, version)
            shutil.rmtree(staged, ignore_errors=True)
        self._load(path, name, version, generation, source=safe_url(url), fresh=True)

    @staticmethod
    def _name_hint(desired: Any) -> str:
        base = desired.file_name or PurePosixPath(urllib.parse.urlsplit(desired.url).path).name
        stem = base[:-4] if base.lower().endswith(".zip") else base
        match = _VERSIONED.match(stem)
        return match["name"] if match else (stem or "model")

    def _load(self, path: Path, name: str, version: str, generation: int, *, source: str,
              fresh: bool = False) -> None:
        if self._cancelled(generation)():
            if fresh:
                self.repository.remove(name, version)
            return
        self._report(name=name, desiredVersion=version, status="loading", error=None,
                     progress=None)
        try:
            info = self._activate(path, name, version)
        except Exception as exc:  # noqa: BLE001 - any load failure keeps the old model
            if fresh:
                self.repository.remove(name, version)
            self._fail(version, f"model failed to load: {exc}", name)
            return
        self.repository.set_active(name, version)
        self.repository.prune(name, self.runtime.settings.model_repository.keep_versions)
        activated = datetime.now(UTC).isoformat(timespec="seconds")
        self.status = {}
        self._report(name=name, version=version, desiredVersion=version,
                     format=info.get("format"), status="active", progress=None, error=None,
                     activatedAt=activated, providers=info.get("providers"))
        body = {"name": name, "version": version, "format": info.get("format"),
                "status": "active", "activatedAt": activated, "source": source,
                "providers": info.get("providers")}
        try:
            self.runtime.send_body("model", "model.activated", body)
        except Exception as exc:  # noqa: BLE001 - a missing route must not undo the swap
            event(log, logging.WARNING, "model.message_failed", error=str(exc))
        event(log, logging.INFO, "model.activated", model=name, version=version, source=source)
