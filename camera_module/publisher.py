"""Finished recordings into the outbox, and never a clip lost without saying so.

The clip writer thread takes each recording once it has ended (or one an earlier run left on
disk), makes the clip from its journal (:mod:`camera_module.spool`), publishes it into the
outbox (video, thumbnail, sidecar last) and only then removes the recording's folder. So at
any instant the evidence is in the recording folder, in the outbox, or in both; never in
neither.

- A disk error keeps the recording (on disk, and in memory what the disk refused) and
  retries every :data:`RETRY_S`; a restart finds it again. At most ``max_failed`` recordings
  wait: one more gives up the oldest by capture time, which is reported as dropped (alert,
  log, reported properties), by event id.
- Packets that cannot make a clip (no keyframe left, an unreadable header) put the folder
  aside as ``<stem>.unusable`` (kept, never deleted for being partial) and are reported.
- An unexpected exception in the writer is the supervisor's (logged, alerted, the thread
  restarted); the recording it was working on is retried once and then put aside, so one bad
  recording cannot keep the module in a restart loop.

The counters (written, failures, dropped and which were dropped) are saved in the state
folder, so a restart does not report ``clipsDropped 0`` after losing one.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import queue
import re
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import av

from camera_module import spool
from camera_module.clipwriter import (
    ClipError,
    draw_thumbnail,
    frame_at,
    publish,
    write_video,
)
from camera_module.journal import JournalError, remove
from camera_module.packets import EncodedPacket
from camera_module.recording import Recording
from camera_module.sampling import WallClock
from camera_module.sidecar import build_sidecar, camera_ids
from camera_module.source import Spawn, plain_thread
from config.camera import IdentitySettings
from contracts.clip import SIDECAR_SUFFIX, VIDEO_SUFFIX, clip_stem
from contracts.messages import CameraMessage, ClipFailed, ClipWriteFailed, ClipWritten, EventEnded
from edge_link.base import Identity
from infra.durable import temp_beside, write_atomic
from infra.logs import event

log = logging.getLogger(__name__)

THUMBNAIL_WIDTH = 640
RETRY_S = 15.0
KEEP_DROPPED = 20
MAX_CRASHES = 2
UNUSABLE_SUFFIX = ".unusable"


@dataclass
class Counters:
    """What the reported ``recording`` section counts, kept across restarts."""

    written: int = 0
    failures: int = 0
    dropped: int = 0
    recovered: int = 0
    dropped_clips: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path | None) -> Counters:
        if path is None or not path.exists():
            return cls()
        try:
            doc = json.loads(path.read_text())
            return cls(**{k: doc[k] for k in asdict(cls()) if k in doc})
        except (OSError, ValueError, TypeError) as exc:
            event(log, logging.WARNING, "recorder.counters_unreadable", path=str(path),
                  error=str(exc), action="counting from zero")
            return cls()

    def save(self, path: Path | None) -> None:
        if path is None:
            return
        try:
            write_atomic(path, json.dumps(asdict(self), indent=1))
        except OSError as exc:  # a full disk: the counters in memory still report
            event(log, logging.WARNING, "recorder.counters_not_saved", error=str(exc))


class ClipPublisher:
    """Owns the clip writer thread, the recordings waiting for the disk and the counters."""

    def __init__(self, outbox: Path, recordings: Path, wall: WallClock, device: Identity,
                 names: Callable[[], IdentitySettings], send: Callable[[CameraMessage], None],
                 *, state_file: Path | None = None, max_failed: int = 3,
                 spawn: Spawn = plain_thread) -> None:
        self._outbox = outbox
        self._recordings = recordings
        self._wall = wall
        self._device = device
        self._names = names
        self._send = send
        self._state_file = state_file
        self._max_failed = max_failed
        self._spawn = spawn
        self._jobs: queue.Queue[Recording | Path | None] = queue.Queue()
        self._failed: list[Recording] = []
        self._current: Recording | Path | None = None
        self._thread: threading.Thread | None = None
        self.counters = Counters.load(state_file)

    # -- the thread -----------------------------------------------------------------------

    def recover(self) -> list[Path]:
        """Queue every recording an earlier run left (call before new recordings start)."""
        if not self._recordings.is_dir():
            return []
        found = sorted(p for p in self._recordings.iterdir() if p.is_dir()
                       and not p.name.startswith(".") and not p.name.endswith(UNUSABLE_SUFFIX))
        for folder in found:
            self._jobs.put(folder)
        if found:
            event(log, logging.WARNING, "recording.recovering", recordings=len(found),
                  folder=str(self._recordings))
        return found

    def start(self) -> None:
        self._outbox.mkdir(parents=True, exist_ok=True)
        self._recordings.mkdir(parents=True, exist_ok=True)
        self._thread = self._spawn("clip-writer", self._run)

    def submit(self, rec: Recording) -> None:
        self._jobs.put(rec)

    def stop(self, timeout_s: float) -> None:
        self._jobs.put(None)
        if self._thread is not None:
            self._thread.join(timeout_s)

    def pending(self) -> int:
        return self._jobs.qsize() + len(self._failed)

    def _run(self) -> None:
        crashed, self._current = self._current, None
        if crashed is not None:
            self._crashed(crashed)
        while True:
            try:
                job = self._jobs.get(timeout=RETRY_S if self._failed else None)
            except queue.Empty:
                job = self._failed.pop(0)
            if job is None:
                return
            self._current = job
            rec = self._load(job) if isinstance(job, Path) else job
            if rec is not None:
                self._current = rec
                self.write(rec)
            self._current = None

    def _crashed(self, job: Recording | Path) -> None:
        """The writer raised on ``job`` and was restarted: once more, then put it aside."""
        if isinstance(job, Path):
            self._set_aside(job, "the clip writer failed on it")
            self._report_unusable(*parse_stem(job.name), "the clip writer failed on it")
            return
        job.crashes += 1
        if job.crashes >= MAX_CRASHES:
            self._unusable(job, "the clip writer failed on it repeatedly")
        else:
            self._failed.insert(0, job)

    def _load(self, folder: Path) -> Recording | None:
        if (self._outbox / (folder.name + SIDECAR_SUFFIX)).exists():
            # Published just before the stop, folder not yet removed: once is enough.
            event(log, logging.INFO, "recording.already_published", stem=folder.name)
            remove(folder)
            return None
        try:
            rec = spool.load(folder)
        except JournalError as exc:
            self._set_aside(folder, str(exc))
            self._report_unusable(*parse_stem(folder.name), str(exc))
            return None
        self.counters.recovered += 1
        event(log, logging.WARNING, "recording.recovered", event_id=rec.event_id, part=rec.part,
              interrupted=rec.interrupted is not None, reason=rec.interrupted or "waiting")
        return rec

    # -- one clip -------------------------------------------------------------------------

    def write(self, rec: Recording) -> dict[str, int] | None:
        """Make and publish one clip; on a disk error keep it for a retry (bounded) and
        alert; None unless it is in the outbox now."""
        rec.attempts += 1
        try:
            self._make_durable(rec)
            packets, damaged = spool.clip_packets(rec)
            self._announce(rec, packets)
            files = self._write(rec, packets, damaged)
        except OSError as exc:
            self._failed_write(rec, exc)
            return None
        except (ClipError, JournalError, av.FFmpegError) as exc:
            self._unusable(rec, str(exc))
            return None
        if rec.folder is not None:
            remove(rec.folder)
        self.counters.written += 1
        self.counters.save(self._state_file)
        return files

    def _make_durable(self, rec: Recording) -> None:
        """Whatever of ``rec`` is only in memory goes to its journal first (an on-demand
        clip, what a full disk refused), so a restart finds it; if the disk still refuses,
        the clip is made from memory all the same. A recovered recording is on disk already,
        and one cut short must not get an end line it never had."""
        if rec.ended or rec.interrupted is not None:
            return
        try:
            spool.flush(rec, self._recordings, self._wall)
            spool.end(rec)
        except OSError as exc:
            event(log, logging.WARNING, "recording.not_durable", event_id=rec.event_id,
                  part=rec.part, error=str(exc), pending_packets=len(rec.packets))

    def _announce(self, rec: Recording, packets: list[EncodedPacket]) -> None:
        """A recovered recording that was cut short: its event ended by interruption (an
        on-demand clip has no event to end)."""
        if rec.interrupted is None or rec.announced or not packets or rec.kind != "detection":
            return
        wall = rec.wall or self._wall
        self._send(EventEnded(**camera_ids(self._names()), event_id=rec.event_id,
                              end_utc=wall.utc(packets[-1].t), parts=rec.part,
                              reason=f"interrupted: {rec.interrupted}"))
        rec.announced = True

    def _write(self, rec: Recording, packets: list[EncodedPacket],
               damaged: int) -> dict[str, int]:
        names = self._names()
        wall = rec.wall or self._wall
        video_tmp = temp_beside(self._outbox / (rec.stem + VIDEO_SUFFIX))
        try:
            video = write_video(video_tmp, packets)
            thumbnail = self._thumbnail(rec, packets)
            sidecar = build_sidecar(rec, video, video_tmp, thumbnail=thumbnail is not None,
                                    device_id=self._device.device_id, names=names, wall=wall)
            files = publish(self._outbox, rec.stem, video_tmp, thumbnail, sidecar)
        finally:
            video_tmp.unlink(missing_ok=True)
        event(log, logging.INFO, "clip.written", event_id=rec.event_id, part=rec.part,
              duration_s=round(video.duration_s, 2), bytes=sidecar.video.bytes,
              copied=video.copied, detections=len(sidecar.detections),
              interrupted=sidecar.interrupted, gaps=len(sidecar.gaps), damaged=damaged)
        self._send(ClipWritten(
            **camera_ids(names), event_id=rec.event_id, part=rec.part, stem=rec.stem,
            files=files, duration_s=sidecar.video.duration_s, start_utc=sidecar.start_utc,
            end_utc=sidecar.end_utc, max_score=sidecar.max_score, trigger=rec.kind))
        return files

    def _thumbnail(self, rec: Recording, packets: list[EncodedPacket]) -> bytes | None:
        best = rec.best
        frame = best.frame if best is not None else None
        if frame is None and rec.wall is not None and packets:
            # Recovered: the decoded frames died with the process; decode the best one (or,
            # with no detection at all, the first) from the video itself.
            frame = frame_at(packets, best.t if best is not None else packets[0].t)
        if frame is None:
            return None
        height = round(frame.height * THUMBNAIL_WIDTH / frame.width / 2) * 2
        width = min(THUMBNAIL_WIDTH, frame.width)
        image = frame.reformat(width=width, height=min(height, frame.height),
                               format="rgb24").to_ndarray()
        boxes = [(d.label, d.score, d.box) for d in best.detections] if best else []
        return draw_thumbnail(image, boxes)

    # -- when it goes wrong ---------------------------------------------------------------

    def _failed_write(self, rec: Recording, exc: OSError) -> None:
        self.counters.failures += 1
        full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
        event(log, logging.ERROR, "clip.write_failed", event_id=rec.event_id, part=rec.part,
              attempt=rec.attempts, disk_full=full, error=str(exc))
        if rec not in self._failed:
            self._failed.append(rec)
        dropped = None
        if len(self._failed) > self._max_failed:
            dropped = min(self._failed, key=lambda r: (r.wall or self._wall).utc(r.trigger_t))
            self._failed.remove(dropped)
            self._drop(dropped, "too many clips waiting for the disk")
        self.counters.save(self._state_file)
        self._send(ClipWriteFailed(
            **camera_ids(self._names()), event_id=rec.event_id, part=rec.part, error=str(exc),
            disk_full=full, waiting=len(self._failed), retry_in_s=RETRY_S,
            dropped=None if dropped is None else dropped.stem))

    def _drop(self, rec: Recording, reason: str) -> None:
        """Give up a waiting clip (its folder goes: the disk is what is short)."""
        self._count_dropped(rec.event_id, rec.part, rec.stem, reason)
        spool.close_files(rec)
        if rec.folder is not None:
            remove(rec.folder)

    def _count_dropped(self, event_id: str, part: int, stem: str, reason: str) -> None:
        """A clip that will not reach the outbox, for everyone to see: log, counters and the
        reported list (the alert is the caller's)."""
        self.counters.dropped += 1
        self.counters.dropped_clips = [*self.counters.dropped_clips[-(KEEP_DROPPED - 1):], {
            "eventId": event_id, "part": part, "stem": stem, "reason": reason,
            "atUtc": datetime.now(UTC).isoformat(timespec="seconds")}]
        event(log, logging.ERROR, "clip.dropped", event_id=event_id, part=part, reason=reason)

    def _unusable(self, rec: Recording, reason: str) -> None:
        spool.close_files(rec)
        if rec.folder is not None:
            self._set_aside(rec.folder, reason)
        self._report_unusable(rec.event_id, rec.part, reason)

    def _set_aside(self, folder: Path, reason: str) -> None:
        """Keep an unusable recording's folder, out of the way of the next recovery."""
        try:
            os.replace(folder, folder.with_name(folder.name + UNUSABLE_SUFFIX))
        except OSError as exc:
            event(log, logging.ERROR, "recording.set_aside_failed", folder=str(folder),
                  error=str(exc), reason=reason)

    def _report_unusable(self, event_id: str, part: int, reason: str) -> None:
        self.counters.failures += 1
        event(log, logging.ERROR, "clip.unwritable", event_id=event_id, part=part, error=reason)
        self._count_dropped(event_id, part, clip_stem(event_id, part), reason)
        self.counters.save(self._state_file)
        self._send(ClipFailed(**camera_ids(self._names()), event_id=event_id, part=part,
                              reason=reason))


def parse_stem(stem: str) -> tuple[str, int]:
    """Event id and part of a clip stem (:func:`contracts.clip.clip_stem` backwards)."""
    match = re.fullmatch(r"(.+)_p(\d+)", stem)
    return (match.group(1), int(match.group(2))) if match else (stem, 1)
