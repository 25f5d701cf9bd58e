"""The uploader service: outbox in, blobs out, nothing lost on the way.

Threads and their jobs:

* workers (``upload.max_concurrency``): claim the oldest pending clip, check it, upload video,
  thumbnail and sidecar (in that order, so a sidecar in blob storage means a complete clip),
  confirm each blob, then tell the cloud (output ``clips``) and remove the local files;
* housekeeping: scans the outbox (at start, every ``outbox.scan_interval_s`` and soon after a
  file-system event), enforces the quota, reports leftovers and a low disk, and publishes the
  ``upload`` reported properties;
* the watchdog observer, which only hurries the other two.

The queue is the outbox folder itself; memory holds only which clips are being uploaded now
and which are waiting out a retry delay, so an outage of hours grows the disk, not the process.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any, Protocol

from config.uploader import UploaderSettings
from contracts.clip import SIDECAR_SUFFIX, THUMBNAIL_SUFFIX, VIDEO_SUFFIX, ClipSidecar
from infra.logs import event
from infra.throttle import Throttle
from uploader_module import gate as gates
from uploader_module.blocks import FilePlan, plan_file
from uploader_module.clipset import ClipFiles, CorruptClip, check_clip, check_video, read_sidecar
from uploader_module.naming import CONTENT_TYPES, blob_metadata, blob_name
from uploader_module.outbox import Entry, Outbox, OutboxWatch, Scan
from uploader_module.quarantine import quarantine
from uploader_module.quota import choose_evictions
from uploader_module.status import UploadStatus
from uploader_module.storage import BlobTarget, Interrupted, PutResult, StorageError

log = logging.getLogger(__name__)

MB = 1024 * 1024
KB_S = 1000  # bytes per kB/s of upload.bandwidth_kbps
# Coalesces a burst of file-system events into one housekeeping pass.
HOUSEKEEPING_SETTLE_S = 0.5


class Host(Protocol):
    """What the service needs from the module runtime (``edge_link.runtime.ModuleRuntime``)."""

    @property
    def settings(self) -> Any: ...

    def subscribe(self, listener: Callable[[Any, Any, tuple[str, ...]], None]) -> None: ...

    def send_body(self, output: str, msg_type: str, body: dict[str, Any]) -> None: ...

    def report(self, section: str, value: Any) -> None: ...


class UploaderService:
    """Drains the outbox into blob storage; see the module docstring for the threads."""

    def __init__(self, host: Host) -> None:
        self.host = host
        settings = self.settings
        self.outbox = Outbox(settings.outbox.dir)
        self.status = UploadStatus()
        self.gate = gates.EndpointGate(settings.upload.retry.initial_s,
                                       settings.upload.retry.max_s)
        self.throttle = Throttle(settings.upload.bandwidth_kbps * KB_S)
        self._stop = threading.Event()
        self._poke = threading.Event()
        self._work = threading.Condition()
        self._work_seq = 0
        # Guards the claims (busy, deferred) and the target; re-entrant because eviction and
        # its error reporting run under it.
        self._lock = threading.RLock()
        self._busy: set[str] = set()
        self._deferred: dict[str, float] = {}
        self._target: BlobTarget | None = None
        self._target_error: StorageError | None = None
        self._leftovers_alerted: set[str] = set()
        self._scores: dict[str, tuple[float, float | None]] = {}
        self._disk_low = False
        self._workers: list[threading.Thread] = []
        self._housekeeper = threading.Thread(target=self._housekeeping, name="uploader-scan",
                                             daemon=True)
        self._watch: OutboxWatch | None = None

    @property
    def settings(self) -> UploaderSettings:
        return self.host.settings  # type: ignore[no-any-return]

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        try:
            self.outbox.create()
        except OSError as exc:  # a full or read-only disk: keep running, report, retry
            self._local_error(exc, None)
        self.host.subscribe(self._on_settings)
        self._watch = self.outbox.watch(self._on_file_event)
        try:
            self._watch.start()
        except OSError as exc:
            event(log, logging.ERROR, "outbox.watch_failed", folder=self.outbox.root,
                  error=str(exc), action="periodic scans only")
        # One pass before any worker claims a clip: the quota acts on what the outbox holds at
        # start (oldest first) rather than on whatever the workers have not grabbed yet.
        self._housekeep_safely()
        self._housekeeper.start()
        self._add_workers(self.settings.upload.max_concurrency)
        event(log, logging.INFO, "uploader.started", outbox=self.outbox.root,
              container=self.settings.upload.container,
              api_version=self.settings.upload.api_version)

    def stop(self) -> None:
        """Stop between blocks; staged blocks stay on the service for the next start."""
        self._stop.set()
        self._poke.set()
        self._wake_workers()
        if self._watch is not None:
            self._watch.stop()
        for thread in [self._housekeeper, *self._workers]:
            if thread.is_alive():
                thread.join(timeout=self.settings.upload.timeout_s + 5)
        self.host.report("upload", self.status.snapshot())
        event(log, logging.INFO, "uploader.stopped")

    def method_status(self, payload: Any) -> tuple[int, Any]:
        """Direct method ``upload_status``: the reported ``upload`` section, fresh."""
        return 200, self.status.snapshot()

    # -- events ---------------------------------------------------------------------------

    def _on_file_event(self) -> None:
        self._poke.set()
        self._wake_workers()

    def _on_settings(self, old: Any, new: Any, changed: tuple[str, ...]) -> None:
        if any(p.startswith("upload.") for p in changed):
            with self._lock:
                self._target, self._target_error = None, None
                self._deferred.clear()
            self.gate.configure(new.upload.retry.initial_s, new.upload.retry.max_s)
            self.gate.reopen()
            self.throttle.set_rate(new.upload.bandwidth_kbps * KB_S)
            event(log, logging.INFO, "uploader.settings_applied",
                  changed=",".join(p for p in changed if p.startswith("upload.")))
        self._add_workers(new.upload.max_concurrency)
        self._poke.set()
        self._wake_workers()

    def _wake_workers(self) -> None:
        with self._work:
            self._work_seq += 1
            self._work.notify_all()

    # -- workers --------------------------------------------------------------------------

    def _add_workers(self, count: int) -> None:
        while len(self._workers) < count:
            thread = threading.Thread(target=self._worker, args=(len(self._workers),),
                                      name=f"uploader-{len(self._workers)}", daemon=True)
            self._workers.append(thread)
            thread.start()

    def _worker(self, index: int) -> None:
        while not self._stop.is_set():
            with self._work:
                seq = self._work_seq
            entry = target = None
            # The target is taken after the wait: new settings may have replaced it meanwhile.
            if (index < self.settings.upload.max_concurrency and self.gate.wait_open(self._stop)
                    and (target := self._get_target()) is not None):
                entry = self._claim()
            if entry is None or target is None:
                self._idle(seq)
                continue
            try:
                self._process(target, entry.files)
            except Exception:
                # A bug must not end the worker: the clip stays and is retried later.
                log.exception("upload.unexpected_error stem=%s", entry.stem)
                self._defer(entry.stem, self.settings.upload.retry.max_s)
            finally:
                with self._lock:
                    self._busy.discard(entry.stem)

    def _idle(self, seq: int) -> None:
        with self._work:
            if seq == self._work_seq and not self._stop.is_set():
                self._work.wait(self.settings.outbox.scan_interval_s)

    def _get_target(self) -> BlobTarget | None:
        with self._lock:
            if self._target is None and self._target_error is None:
                try:
                    self._target = BlobTarget(self.settings.upload)
                except StorageError as exc:
                    self._target_error = exc
                    self.status.state(gates.NOT_CONFIGURED)
                    self.status.error(exc.kind, str(exc))
                    event(log, logging.ERROR, "upload.not_configured", error=str(exc))
            return self._target

    def _claim(self) -> Entry | None:
        scan = self.outbox.scan()
        with self._lock:
            now = time.monotonic()
            for entry in scan.pending:
                # The sidecar check drops clips another worker finished since the listing.
                if (entry.stem not in self._busy and self._deferred.get(entry.stem, 0.0) <= now
                        and entry.files.sidecar.exists()):
                    self._busy.add(entry.stem)
                    return entry
        return None

    def _defer(self, stem: str, delay_s: float) -> None:
        with self._lock:
            self._deferred[stem] = time.monotonic() + delay_s

    def _process(self, target: BlobTarget, files: ClipFiles) -> None:
        stem = files.stem
        sidecar: ClipSidecar | None = None
        started = time.monotonic()
        try:
            sidecar = read_sidecar(files.sidecar)
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
        block = target.block_bytes
        names = {s: blob_name(sidecar, s) for s in (VIDEO_SUFFIX, THUMBNAIL_SUFFIX,
                                                     SIDECAR_SUFFIX)}
        suffixes = [VIDEO_SUFFIX, *([THUMBNAIL_SUFFIX] if sidecar.thumbnail else []),
                    SIDECAR_SUFFIX]
        target.ensure_container()
        if not files.video.exists():
            sidecar_plan = plan_file(files.sidecar, block)
            if target.confirmed(names[SIDECAR_SUFFIX], sidecar_plan):
                # A crash cut the clean-up short after the upload: the sidecar goes last, so
                # the clip is complete in storage. Finish it (the message may go twice).
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
        self.host.send_body("clips", "clip_uploaded", {
            "eventId": sidecar.event_id, "part": sidecar.part, "stem": files.stem,
            "trainId": sidecar.train_id, "cameraId": sidecar.camera_id,
            "startUtc": sidecar.start_utc.isoformat(), "maxScore": sidecar.max_score,
            "labels": sidecar.labels, "modelVersion": sidecar.model.version,
            "container": target.container, "bytes": total,
            "blobs": [{"name": r.name, "bytes": r.bytes,
                       "contentType": CONTENT_TYPES[os.path.splitext(r.name)[1]]}
                      for r in results],
        })
        kept = self._remove_local(files)
        self.gate.succeeded()
        with self._lock:
            self._deferred.pop(files.stem, None)
        self.status.state(gates.OK)
        self.status.success(sidecar.event_id, files.stem, total)
        event(log, logging.INFO, "upload.done", event_id=sidecar.event_id, stem=files.stem,
              bytes=total, bytes_sent=sent, blobs_already_stored=sum(
                  r.already_there for r in results), seconds=round(seconds, 2),
              mb_per_s=round(sent / MB / seconds, 2) if seconds > 0 else None,
              local="kept" if kept else "deleted")
        self._report()

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
                    os.replace(path, self.outbox.uploaded / path.name)
                    os.utime(self.outbox.uploaded / path.name, (now, now))
                else:
                    path.unlink()
        except OSError as exc:
            self._local_error(exc, files.stem)
        return keep

    # -- failures -------------------------------------------------------------------------

    def _storage_failed(self, exc: StorageError, stem: str, sidecar: ClipSidecar | None) -> None:
        event_id = sidecar.event_id if sidecar else None
        self.status.error(exc.kind, str(exc), stem)
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
            self._defer(stem, delay)
            event(log, logging.WARNING, "upload.rejected", event_id=event_id, stem=stem,
                  error=str(exc), retry_in_s=delay, local="kept")
        self.status.state(self.gate.state)
        self._report()

    def _local_error(self, exc: OSError, stem: str | None) -> None:
        """A local file operation failed (full disk, permissions): report, retry later."""
        self.status.error("local", f"{type(exc).__name__}: {exc}", stem)
        event(log, logging.ERROR, "outbox.io_error", stem=stem, error=str(exc),
              errno=exc.errno, disk_full=exc.errno == 28)
        if stem is not None:
            self._defer(stem, self.settings.upload.retry.max_s)
        self._report()

    def _quarantine(self, files: ClipFiles, reason: str, sidecar: ClipSidecar | None) -> None:
        try:
            folder = quarantine(files, self.outbox.quarantine, reason)
        except OSError as exc:
            self._local_error(exc, files.stem)
            return
        event_id = sidecar.event_id if sidecar else None
        self.status.count("quarantinedClips")
        self.status.error("corrupt", reason, files.stem)
        event(log, logging.ERROR, "clip.quarantined", event_id=event_id, stem=files.stem,
              reason=reason, folder=folder)
        self.host.send_body("alerts", "clip_quarantined", {
            "alert": "clip_quarantined", "eventId": event_id, "stem": files.stem,
            "reason": reason, "folder": str(folder)})
        self._report()

    # -- housekeeping ---------------------------------------------------------------------

    def _housekeeping(self) -> None:
        while not self._stop.is_set():
            self._poke.wait(self.settings.outbox.scan_interval_s)
            self._poke.clear()
            if self._stop.wait(HOUSEKEEPING_SETTLE_S):
                return
            self._housekeep_safely()

    def _housekeep_safely(self) -> None:
        try:
            self._housekeep()
        except Exception:
            log.exception("housekeeping.failed")

    def _housekeep(self) -> None:
        settings = self.settings
        self.outbox.create()
        scan = self.outbox.scan()
        if self._purge_kept(scan, settings) | self._enforce_quota(scan, settings):
            scan = self.outbox.scan()
        leftovers = self._report_leftovers(scan, settings.outbox.incomplete_grace_s)
        free = self._check_disk(settings.outbox.min_free_mb)
        with self._lock:
            uploading = len(self._busy)
            not_configured = self._target_error is not None
        self.status.state(gates.NOT_CONFIGURED if not_configured else self.gate.state)
        self.status.outbox(scan, uploading=uploading, leftovers=leftovers, disk_free=free,
                           disk_low=self._disk_low, retry_in_s=self.gate.retry_in())
        self._report()
        self._wake_workers()

    def _purge_kept(self, scan: Scan, settings: UploaderSettings) -> bool:
        cutoff = time.time() - settings.upload.keep_uploaded_hours * 3600
        old = [e for e in scan.kept if e.mtime <= cutoff]
        for entry in old:
            self._delete(entry.files, "kept_expired")
        return bool(old)

    def _enforce_quota(self, scan: Scan, settings: UploaderSettings) -> bool:
        quota = int(settings.outbox.quota_mb * MB)
        if scan.used_bytes <= quota:
            return False
        with self._lock:
            purge, evict = choose_evictions(scan, quota, settings.outbox.eviction,
                                            set(self._busy), self._score)
            for entry in purge:
                self._delete(entry.files, "quota")
            for entry in evict:
                self._evict(entry, settings, scan.used_bytes, quota)
        if scan.used_bytes - sum(e.bytes for e in (*purge, *evict)) > quota:
            event(log, logging.WARNING, "outbox.over_quota", used_bytes=scan.used_bytes,
                  quota_bytes=quota, reason="remaining clips are being uploaded or unreadable")
        return bool(purge or evict)

    def _evict(self, entry: Entry, settings: UploaderSettings, used: int, quota: int) -> None:
        score = self._score(entry)
        event_id = None
        with contextlib.suppress(CorruptClip, OSError):
            event_id = read_sidecar(entry.files.sidecar).event_id
        if not self._delete(entry.files, "evicted"):
            return
        self.status.count("evictedClips")
        event(log, logging.WARNING, "clip.evicted", event_id=event_id, stem=entry.stem,
              bytes=entry.bytes, max_score=score, policy=settings.outbox.eviction,
              used_bytes=used, quota_bytes=quota)
        self.host.send_body("alerts", "clip_evicted", {
            "alert": "clip_evicted", "eventId": event_id, "stem": entry.stem,
            "bytes": entry.bytes, "maxScore": score, "policy": settings.outbox.eviction,
            "outboxBytes": used, "quotaBytes": quota})

    def _delete(self, files: ClipFiles, why: str) -> bool:
        try:
            for path in files.present():
                path.unlink()
        except OSError as exc:
            self._local_error(exc, None)
            return False
        event(log, logging.INFO if why == "kept_expired" else logging.WARNING, "outbox.deleted",
              stem=files.stem, why=why)
        return True

    def _score(self, entry: Entry) -> float | None:
        cached = self._scores.get(entry.stem)
        if cached is not None and cached[0] == entry.mtime:
            return cached[1]
        try:
            score: float | None = read_sidecar(entry.files.sidecar).max_score
        except (CorruptClip, OSError):
            score = None
        self._scores[entry.stem] = (entry.mtime, score)
        return score

    def _report_leftovers(self, scan: Scan, grace_s: float) -> int:
        cutoff = time.time() - grace_s
        leftovers = [e for e in scan.incomplete if e.mtime <= cutoff]
        for entry in leftovers:
            if entry.stem in self._leftovers_alerted:
                continue
            self._leftovers_alerted.add(entry.stem)
            names = [p.name for p in entry.files.present()]
            event(log, logging.WARNING, "clip.incomplete", stem=entry.stem, files=",".join(names),
                  age_s=round(time.time() - entry.mtime))
            self.host.send_body("alerts", "clip_incomplete", {
                "alert": "clip_incomplete", "stem": entry.stem, "files": names,
                "bytes": entry.bytes, "ageS": round(time.time() - entry.mtime)})
        self._leftovers_alerted &= {e.stem for e in leftovers}
        return len(leftovers)

    def _check_disk(self, min_free_mb: float) -> int | None:
        try:
            free = shutil.disk_usage(self.outbox.root).free
        except OSError as exc:
            self._local_error(exc, None)
            return None
        low = free < min_free_mb * MB
        if low and not self._disk_low:
            event(log, logging.ERROR, "disk.low", free_bytes=free, min_free_mb=min_free_mb,
                  folder=self.outbox.root)
            self.host.send_body("alerts", "disk_low", {"alert": "disk_low", "freeBytes": free,
                                                  "folder": str(self.outbox.root)})
        elif self._disk_low and not low:
            event(log, logging.INFO, "disk.recovered", free_bytes=free)
        self._disk_low = low
        return free

    def _report(self) -> None:
        self.host.report("upload", self.status.snapshot())


def _check_video(sidecar: ClipSidecar, plan: FilePlan) -> None:
    """Refuse to commit a video that is not the one its sidecar describes."""
    check_video(sidecar, plan.size, plan.sha256)
