"""The uploader service: outbox in, blobs out, nothing lost on the way.

Threads and their jobs:

* workers (``upload.max_concurrency``): claim the oldest pending clip, check it, upload video,
  thumbnail and sidecar (in that order, so a sidecar in blob storage means a complete clip),
  confirm each blob, then tell the cloud (output ``clips``), mark the clip announced
  (:mod:`uploader_module.announced`, so a crash never announces it twice) and remove the
  local files;
* housekeeping (:mod:`uploader_module.housekeeping`): scans the outbox (at start, every
  ``outbox.scan_interval_s`` and soon after a file-system event), enforces the quota, reports
  leftovers and a low disk;
* the watchdog observer, which only hurries the other two.

Workers and housekeeping run under the runtime's supervisor (``host.workers``): an exception
that escapes one is logged with its traceback, alerted (``worker.failed``) and the thread
restarted with backoff; one that keeps failing ends the module so that IoT Edge restarts it.
An unexpected failure on one clip is not one of those: it is reported (``lastError`` kind
``internal``, counted in ``internalErrors``, the traceback logged once per error) and the clip
retried later, so one clip that trips a bug never stops the others.

The queue is the outbox folder itself; memory holds only which clips are being uploaded now
and which are waiting out a retry delay (:mod:`uploader_module.claims`), so an outage of hours
grows the disk, not the process. The ``upload`` reported properties are this service's
:meth:`~UploaderService.status`, sent by the runtime's status reporter.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping
from functools import partial
from typing import Any, Protocol

from config.uploader import UploaderSettings
from contracts.blob_layout import CONTENT_TYPES, blob_metadata, blob_name
from contracts.clip import SIDECAR_SUFFIX, THUMBNAIL_SUFFIX, VIDEO_SUFFIX, ClipSidecar
from contracts.messages import ClipQuarantined, ClipUploaded, Message, UploadedBlob
from edge_link.runtime import MethodHandler, ModuleService
from infra.durable import replace_durably
from infra.logs import event, event_with_traceback
from infra.supervision import Workers
from infra.throttle import KB, Throttle
from uploader_module import gate as gates
from uploader_module.announced import Announcements
from uploader_module.blocks import FilePlan, plan_file
from uploader_module.claims import Claims
from uploader_module.clipset import ClipFiles, CorruptClip, check_clip, check_video, read_sidecar
from uploader_module.housekeeping import Findings, Housekeeper
from uploader_module.outbox import MB, Outbox, OutboxWatch
from uploader_module.quarantine import quarantine
from uploader_module.status import UploadStatus
from uploader_module.storage import BlobTarget, Interrupted, PutResult, StorageError

log = logging.getLogger(__name__)


class Host(Protocol):
    """What the service uses of its ``ModuleRuntime[UploaderSettings]``: narrow, so a test or
    the benchmark can stand in for the runtime."""

    @property
    def settings(self) -> UploaderSettings: ...

    def send(self, message: Message) -> None: ...

    def status_changed(self) -> None: ...

    @property
    def workers(self) -> Workers: ...


class UploaderService(ModuleService[UploaderSettings]):
    """Drains the outbox into blob storage; see the module docstring for the threads."""

    def __init__(self, host: Host) -> None:
        self.host = host
        settings = host.settings
        self.outbox = Outbox(settings.outbox.dir)
        self.upload_status = UploadStatus()
        self.gate = gates.EndpointGate(settings.upload.retry.initial_s,
                                       settings.upload.retry.max_s)
        self.throttle = Throttle.kbps(settings.upload.bandwidth_kbps)
        self.claims = Claims()
        self.announcements = Announcements(settings.outbox.dir)
        self._stop = threading.Event()
        self._started = False
        self._work = threading.Condition()
        self._work_seq = 0
        # The target is made on first use and dropped when the upload settings change.
        self._target_lock = threading.Lock()
        self._target: BlobTarget | None = None
        self._target_error: StorageError | None = None
        self._workers: list[threading.Thread] = []
        # The last unexpected error per clip: its traceback is logged once, not every retry.
        self._bugs: dict[str, str] = {}
        self.housekeeper = Housekeeper(
            self.outbox, lambda: self.settings, claims=self.claims, status=self.upload_status,
            send=host.send, on_error=self._local_error, after_pass=self._after_housekeeping,
            announcements=self.announcements)
        self._watch: OutboxWatch | None = None

    @property
    def settings(self) -> UploaderSettings:
        return self.host.settings

    # -- lifecycle ------------------------------------------------------------------------

    def methods(self) -> Mapping[str, MethodHandler]:
        return {"upload_status": self._method_status}

    def status(self) -> Mapping[str, Any]:
        return {"upload": self.upload_status.snapshot()}

    def start(self) -> None:
        try:
            self.outbox.create()
        except OSError as exc:  # a full or read-only disk: keep running, report, retry
            self._local_error(exc, None)
        self._watch = self.outbox.watch(self._on_file_event)
        try:
            self._watch.start()
        except OSError as exc:
            event(log, logging.ERROR, "outbox.watch_failed", folder=self.outbox.root,
                  error=str(exc), action="periodic scans only")
        # The workers wait for the first pass: the quota acts on what the outbox holds at
        # start (oldest first) rather than on whatever the workers have not grabbed yet.
        self.housekeeper.start(self.host.workers)
        self._started = True
        self._add_workers(self.settings.upload.max_concurrency)
        event(log, logging.INFO, "uploader.started", outbox=self.outbox.root,
              container=self.settings.upload.container,
              api_version=self.settings.upload.api_version)

    def stop(self) -> None:
        """Stop between blocks; staged blocks stay on the service for the next start."""
        self._stop.set()
        self._wake_workers()
        if self._watch is not None:
            self._watch.stop()
        timeout_s = self.settings.upload.timeout_s + 5
        self.housekeeper.stop(timeout_s)
        for thread in self._workers:
            if thread.is_alive():
                thread.join(timeout=timeout_s)
        event(log, logging.INFO, "uploader.stopped")

    def on_settings(self, old: UploaderSettings, new: UploaderSettings,
                    changed: tuple[str, ...]) -> None:
        """New upload settings take effect at once: a fresh target, retries now rather than
        after the backoff (the change may be the fix). The runtime subscribes this before
        :meth:`start`, which reads the settings itself, so workers only come after it."""
        upload_changed = [p for p in changed if p.startswith("upload.")]
        if upload_changed:
            with self._target_lock:
                self._target, self._target_error = None, None
            self.claims.clear_delays()
            self.gate.configure(new.upload.retry.initial_s, new.upload.retry.max_s)
            self.gate.reopen()
            self.throttle.set_rate(new.upload.bandwidth_kbps * KB)
            event(log, logging.INFO, "uploader.settings_applied",
                  changed=",".join(upload_changed))
        if self._started:
            self._add_workers(new.upload.max_concurrency)
            self.housekeeper.poke()
            self._wake_workers()

    def _method_status(self, payload: Any) -> tuple[int, Any]:
        """Direct method ``upload_status``: the reported ``upload`` section, fresh."""
        return 200, self.upload_status.snapshot()

    # -- events ---------------------------------------------------------------------------

    def _on_file_event(self) -> None:
        self.housekeeper.poke()
        self._wake_workers()

    def _after_housekeeping(self, found: Findings) -> None:
        """Publish what the pass found; wake the workers, since it may have found clips."""
        with self._target_lock:
            not_configured = self._target_error is not None
        self.upload_status.state(gates.NOT_CONFIGURED if not_configured else self.gate.state)
        self.upload_status.outbox(found.scan, uploading=self.claims.busy_count(),
                                  leftovers=found.leftovers, disk_free=found.disk_free,
                                  disk_low=found.disk_low, retry_in_s=self.gate.retry_in())
        self.host.status_changed()
        self._wake_workers()

    def _wake_workers(self) -> None:
        with self._work:
            self._work_seq += 1
            self._work.notify_all()

    # -- workers --------------------------------------------------------------------------

    def _add_workers(self, count: int) -> None:
        while len(self._workers) < count:
            index = len(self._workers)
            self._workers.append(self.host.workers.spawn(f"uploader-{index}",
                                                         partial(self._worker, index)))

    def _worker(self, index: int) -> None:
        """One upload worker's loop; it returns when the service stops."""
        self.housekeeper.first_pass.wait()
        while not self._stop.is_set():
            with self._work:
                seq = self._work_seq
            entry = target = None
            # The target is taken after the wait: new settings may have replaced it meanwhile.
            if (index < self.settings.upload.max_concurrency and self.gate.wait_open(self._stop)
                    and (target := self._get_target()) is not None):
                try:
                    entry = self.claims.claim(self.outbox.scan().pending)
                except OSError as exc:  # the outbox cannot be listed: report, try later
                    self._local_error(exc, None)
            if entry is None or target is None:
                self._idle(seq)
                continue
            try:
                self._process(target, entry.files)
            except Exception as exc:  # noqa: BLE001 - one clip's bug must not stop the others
                self._clip_bug(entry.stem, exc)
            finally:
                self.claims.release(entry.stem)

    def _clip_bug(self, stem: str, exc: Exception) -> None:
        """An unexpected failure on one clip: reported as an error, the clip retried later;
        the traceback is logged the first time this clip fails this way."""
        error = f"{type(exc).__name__}: {exc}"[:200]
        if self._bugs.get(stem) != error:
            event_with_traceback(log, logging.ERROR, "upload.unexpected_error", exc, stem=stem,
                                 action="retried later")
        else:
            event(log, logging.ERROR, "upload.unexpected_error", stem=stem, error=error,
                  action="retried later", traceback="logged before")
        self._bugs[stem] = error
        self.upload_status.count("internalErrors")
        self.upload_status.error("internal", error, stem)
        self.claims.defer(stem, self.settings.upload.retry.max_s)
        self.host.status_changed()

    def _idle(self, seq: int) -> None:
        with self._work:
            if seq == self._work_seq and not self._stop.is_set():
                self._work.wait(self.settings.outbox.scan_interval_s)

    def _get_target(self) -> BlobTarget | None:
        with self._target_lock:
            if self._target is None and self._target_error is None:
                try:
                    self._target = BlobTarget(self.settings.upload)
                except StorageError as exc:
                    self._target_error = exc
                    self.upload_status.state(gates.NOT_CONFIGURED)
                    self.upload_status.error(exc.kind, str(exc))
                    event(log, logging.ERROR, "upload.not_configured", error=str(exc))
            return self._target

    def _process(self, target: BlobTarget, files: ClipFiles) -> None:
        stem = files.stem
        sidecar: ClipSidecar | None = None
        started = time.monotonic()
        try:
            sidecar = read_sidecar(files.sidecar)
            if self.announcements.sent(stem, sidecar.video.sha256):
                # Announced before a crash cut the clean-up short: only the clean-up is left.
                event(log, logging.INFO, "upload.already_announced", event_id=sidecar.event_id,
                      stem=stem, action="local files removed, no second message")
                self._clean_up(files)
                return
            results = self._upload(target, files, sidecar)
        except CorruptClip as exc:
            self._quarantine(files, exc.reason, sidecar)
        except StorageError as exc:
            self._storage_failed(exc, stem, sidecar)
        except Interrupted:
            event(log, logging.INFO, "upload.interrupted", stem=stem,
                  action="staged blocks are kept for the next start")
        except FileNotFoundError as exc:
            event(log, logging.WARNING, "upload.clip_vanished", stem=stem, file=exc.filename)
        except OSError as exc:
            self._local_error(exc, stem)
        else:
            self._finish(target, files, sidecar, results, time.monotonic() - started)

    def _upload(self, target: BlobTarget, files: ClipFiles,
                sidecar: ClipSidecar) -> list[PutResult]:
        names = {s: blob_name(sidecar, s) for s in (VIDEO_SUFFIX, THUMBNAIL_SUFFIX,
                                                     SIDECAR_SUFFIX)}
        suffixes = [VIDEO_SUFFIX, *([THUMBNAIL_SUFFIX] if sidecar.thumbnail else []),
                    SIDECAR_SUFFIX]
        target.ensure_container()
        if not files.video.exists() and target.confirmed(
                names[SIDECAR_SUFFIX], plan_file(files.sidecar, target.block_bytes)):
            # The video is gone, the sidecar is not: a clean-up cut short by a crash without an
            # announced marker (it could not be written, or an older version left the clip).
            # The sidecar goes last, so the clip is complete in storage: announce it (nothing
            # says it was).
            event(log, logging.INFO, "upload.already_stored", event_id=sidecar.event_id,
                  stem=files.stem)
            return [PutResult(names[s], target.size_of(names[s]), 0, 0, 0, True)
                    for s in suffixes]
        check_clip(files, sidecar)
        metadata = blob_metadata(sidecar)
        results = []
        for suffix in suffixes:
            verify = partial(_check_video, sidecar) if suffix == VIDEO_SUFFIX else None
            result = target.put(names[suffix], files.folder / f"{files.stem}{suffix}",
                                content_type=CONTENT_TYPES[suffix], metadata=metadata,
                                throttle=self.throttle, stop=self._stop, verify=verify)
            if result.blocks_reused:
                event(log, logging.INFO, "upload.resumed", event_id=sidecar.event_id,
                      blob=result.name, blocks_reused=result.blocks_reused,
                      blocks_sent=result.blocks_sent)
            results.append(result)
        return results

    def _finish(self, target: BlobTarget, files: ClipFiles, sidecar: ClipSidecar,
                results: list[PutResult], seconds: float) -> None:
        total = sum(r.bytes for r in results)
        sent = sum(r.bytes_sent for r in results)
        message = ClipUploaded(
            event_id=sidecar.event_id, part=sidecar.part, stem=files.stem,
            train_id=sidecar.train_id, camera_id=sidecar.camera_id,
            carriage=sidecar.carriage, position=sidecar.position, start_utc=sidecar.start_utc,
            max_score=sidecar.max_score, labels=sidecar.labels,
            model_version=sidecar.model.version, container=target.container, bytes=total,
            blobs=[UploadedBlob(name=r.name, bytes=r.bytes,
                                content_type=CONTENT_TYPES[os.path.splitext(r.name)[1]])
                   for r in results])
        self.host.send(message)
        try:
            self.announcements.record(files.stem, message.message_id(), sidecar.video.sha256)
        except OSError as exc:  # the message is out: go on, a crash now may repeat it
            event(log, logging.ERROR, "upload.announce_mark_failed", stem=files.stem,
                  error=str(exc), errno=exc.errno)
        kept = self._clean_up(files)
        self.gate.succeeded()
        self.upload_status.state(gates.OK)
        self.upload_status.success(sidecar.event_id, files.stem, total)
        event(log, logging.INFO, "upload.done", event_id=sidecar.event_id, stem=files.stem,
              bytes=total, bytes_sent=sent, blobs_already_stored=sum(
                  r.already_there for r in results), seconds=round(seconds, 2),
              mb_per_s=round(sent / MB / seconds, 2) if seconds > 0 else None,
              local="kept" if kept else "deleted")
        self.host.status_changed()

    def _clean_up(self, files: ClipFiles) -> bool:
        """Remove (or keep) an announced clip's local files, then its announced marker;
        whether the files were kept."""
        kept = self._remove_local(files)
        if not files.sidecar.exists():
            try:
                self.announcements.forget(files.stem)
            except OSError as exc:
                self._local_error(exc, None)  # the next housekeeping pass prunes it
        self.claims.done(files.stem)
        self._bugs.pop(files.stem, None)
        return kept

    def _remove_local(self, files: ClipFiles) -> bool:
        """Delete the clip's files, or move them to ``uploaded/`` to be kept for a while.
        The sidecar goes last, so a crash half-way leaves a clip that is looked at again."""
        keep = self.settings.upload.keep_uploaded_hours > 0
        try:
            if keep:
                self.outbox.uploaded.mkdir(exist_ok=True)
            now = time.time()
            for path in files.present():
                if keep:
                    kept = self.outbox.uploaded / path.name
                    replace_durably(path, kept)
                    os.utime(kept, (now, now))
                else:
                    path.unlink()
        except OSError as exc:
            self._local_error(exc, files.stem)
        return keep

    # -- failures -------------------------------------------------------------------------

    def _storage_failed(self, exc: StorageError, stem: str, sidecar: ClipSidecar | None) -> None:
        event_id = sidecar.event_id if sidecar else None
        self.upload_status.error(exc.kind, str(exc), stem)
        if exc.kind == "auth":
            delay = self.gate.failed(gates.AUTH_REFUSED, self.settings.upload.auth_retry_s)
            event(log, logging.ERROR, "upload.auth_refused", event_id=event_id, stem=stem,
                  error=str(exc), retry_in_s=round(delay, 1), local="kept")
        elif exc.kind == "unreachable":
            delay = self.gate.failed(gates.UNREACHABLE)
            event(log, logging.WARNING, "upload.endpoint_unreachable", event_id=event_id,
                  stem=stem, error=str(exc), retry_in_s=round(delay, 1), local="kept")
        else:
            delay = self.settings.upload.retry.max_s
            self.claims.defer(stem, delay)
            event(log, logging.WARNING, "upload.rejected", event_id=event_id, stem=stem,
                  error=str(exc), retry_in_s=delay, local="kept")
        self.upload_status.state(self.gate.state)
        self.host.status_changed()

    def _local_error(self, exc: OSError, stem: str | None) -> None:
        """A local file operation failed (full disk, permissions): report, retry later."""
        self.upload_status.error("local", f"{type(exc).__name__}: {exc}", stem)
        event(log, logging.ERROR, "outbox.io_error", stem=stem, error=str(exc),
              errno=exc.errno, disk_full=exc.errno == 28)
        if stem is not None:
            self.claims.defer(stem, self.settings.upload.retry.max_s)
        self.host.status_changed()

    def _quarantine(self, files: ClipFiles, reason: str, sidecar: ClipSidecar | None) -> None:
        try:
            folder = quarantine(files, self.outbox.quarantine, reason)
        except OSError as exc:
            self._local_error(exc, files.stem)
            return
        event_id = sidecar.event_id if sidecar else None
        self.upload_status.count("quarantinedClips")
        self.upload_status.error("corrupt", reason, files.stem)
        event(log, logging.ERROR, "clip.quarantined", event_id=event_id, stem=files.stem,
              reason=reason, folder=folder)
        self.host.send(ClipQuarantined(event_id=event_id, stem=files.stem, reason=reason,
                                       folder=str(folder)))
        self.host.status_changed()


def _check_video(sidecar: ClipSidecar, plan: FilePlan) -> None:
    """Refuse to commit a video that is not the one its sidecar describes."""
    check_video(sidecar, plan.size, plan.sha256)
