"""Recordings: which packets and detections go into which clip, and getting it to disk.

A recording starts from the ring buffer (the pre-roll, from a keyframe on) and the recent
observations the recorder remembers for it, then collects live packets until its end time has
passed, and is handed to a writer thread, so neither the stream nor the detect loop ever waits
on the disk. A clip that cannot be written (a full disk) stays in memory and is retried; only
when too many are waiting is the oldest given up, and that is reported as an alert rather than
lost silently.
"""

from __future__ import annotations

import errno
import logging
import queue
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path

import av

from camera_module.clipwriter import ClipError, draw_thumbnail, publish, write_video
from camera_module.packets import EncodedPacket, PacketRing
from camera_module.recording import ClipKind, Observation, Recording
from camera_module.sampling import WallClock
from camera_module.sidecar import build_sidecar
from config.camera import IdentitySettings
from contracts.clip import VIDEO_SUFFIX, ModelInfo
from contracts.messages import CameraMessage, ClipFailed, ClipWriteFailed, ClipWritten
from edge_link.base import Identity
from infra.durable import temp_beside
from infra.logs import event

log = logging.getLogger(__name__)

THUMBNAIL_WIDTH = 640
# A recording whose end passed this long ago without the packets to prove it (the camera
# went away) is written with what it has.
LATE_CLOSE_S = 3.0
RETRY_S = 15.0


def camera_ids(names: IdentitySettings) -> dict[str, str]:
    """The train and camera fields every camera message carries, as the twin names them now."""
    return {"train_id": names.train_id, "camera_id": names.camera_id}


class Recorder:
    """Owns the active recordings, the pre-roll's observations and the writer thread."""

    def __init__(self, ring: PacketRing, outbox: Path, wall: WallClock, device: Identity,
                 names: Callable[[], IdentitySettings], send: Callable[[CameraMessage], None],
                 *, max_failed: int = 3) -> None:
        self._ring = ring
        self._outbox = outbox
        self._wall = wall
        self._device = device
        self._names = names
        self._send = send
        self._max_failed = max_failed
        self._lock = threading.Lock()
        self._active: list[Recording] = []
        # Observations as long back as the ring holds video, without their frames: a clip's
        # pre-roll gets the detections that led to it.
        self._history: deque[Observation] = deque()
        self._jobs: queue.Queue[Recording | None] = queue.Queue()
        self._failed: list[Recording] = []
        self._thread: threading.Thread | None = None
        self.written = 0
        self.failures = 0
        self.dropped = 0

    # -- live side (stream, detect and method threads) ------------------------------------

    def on_packet(self, packet: EncodedPacket) -> None:
        with self._lock:
            if not self._active:
                return
            done = []
            for rec in self._active:
                rec.packets.append(packet)
                if rec.end_t is not None and packet.t > rec.end_t:
                    done.append(rec)
            for rec in done:
                self._close(rec)

    def start(self, event_id: str, part: int, clip_from: float, trigger_t: float,
              thresholds: dict[str, object], model: ModelInfo | None) -> Recording:
        """Begin a part from the ring buffer; live packets are added until it ends."""
        with self._lock:
            rec = self._from_ring(event_id, part, clip_from, trigger_t, thresholds, "detection",
                                  model)
            self._active.append(rec)
        return rec

    def snapshot(self, event_id: str, clip_from: float, now: float,
                 thresholds: dict[str, object], model: ModelInfo | None) -> Recording:
        """What the ring holds from ``clip_from`` to ``now``, for a clip written at once."""
        with self._lock:
            rec = self._from_ring(event_id, 1, clip_from, now, thresholds, "on_demand", model)
        rec.end_t = now
        rec.packets = [p for p in rec.packets if p.t <= now]
        return rec

    def _from_ring(self, event_id: str, part: int, clip_from: float, trigger_t: float,
                   thresholds: dict[str, object], kind: ClipKind,
                   model: ModelInfo | None) -> Recording:
        rec = Recording(event_id, part, trigger_t, kind, thresholds, self._ring.since(clip_from),
                        model=model)
        # A first part's pre-roll happened before the recording existed, so its detections
        # come from the history; a later part starts at the cut, and what came before that
        # belongs to the part before.
        if part == 1:
            first = rec.packets[0].t if rec.packets else clip_from
            for obs in self._history:
                if obs.t >= first:
                    rec.add(obs)
        return rec

    def observe(self, obs: Observation, model: ModelInfo | None) -> None:
        """One sample's observation, handed over once: into every recording it falls in, and
        into the history that recordings started later take their pre-roll from."""
        with self._lock:
            for rec in self._active:
                if rec.end_t is None or obs.t <= rec.end_t:
                    rec.add(obs)
                    rec.model = model or rec.model
            self._history.append(obs.without_frame())
            horizon = obs.t - self._ring.keep_s
            while self._history and self._history[0].t < horizon:
                self._history.popleft()

    def end(self, event_id: str, part: int, end_t: float) -> None:
        """Part ``part`` ends at ``end_t``; it is written once packets past that arrived."""
        with self._lock:
            for rec in self._active:
                if rec.event_id == event_id and rec.part == part:
                    rec.end_t = end_t
                    if rec.packets and rec.packets[-1].t > end_t:
                        self._close(rec)

    def close_late(self, now: float) -> None:
        """Write recordings whose end passed long ago although no packet showed it."""
        with self._lock:
            for rec in [r for r in self._active
                        if r.end_t is not None and now > r.end_t + LATE_CLOSE_S]:
                self._close(rec)

    def _close(self, rec: Recording) -> None:
        self._active.remove(rec)
        assert rec.end_t is not None
        rec.packets = [p for p in rec.packets if p.t <= rec.end_t]
        self._jobs.put(rec)

    # -- writer side ----------------------------------------------------------------------

    def start_writer(self) -> None:
        self._outbox.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._run, name="clip-writer", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Write what is still open (the module is stopping) and end the writer."""
        with self._lock:
            for rec in list(self._active):
                rec.end_t = rec.end_t if rec.end_t is not None else float("inf")
                self._close(rec)
        self._jobs.put(None)
        if self._thread is not None:
            self._thread.join(timeout_s)

    def pending(self) -> int:
        return self._jobs.qsize() + len(self._failed)

    def _run(self) -> None:
        while True:
            try:
                rec = self._jobs.get(timeout=RETRY_S if self._failed else None)
            except queue.Empty:
                rec = self._failed.pop(0)
            if rec is None:
                return
            self.write(rec)

    def write(self, rec: Recording) -> dict[str, int] | None:
        """Write one clip; on a disk error keep it for a retry (bounded) and alert."""
        rec.attempts += 1
        try:
            files = self._write(rec)
        except OSError as exc:
            self._failed_write(rec, exc)
            return None
        except (ClipError, av.FFmpegError) as exc:
            self.failures += 1
            event(log, logging.ERROR, "clip.unwritable", event_id=rec.event_id, part=rec.part,
                  error=str(exc))
            self._send(ClipFailed(**camera_ids(self._names()), event_id=rec.event_id,
                                  part=rec.part, reason=str(exc)))
            return None
        self.written += 1
        return files

    def _failed_write(self, rec: Recording, exc: OSError) -> None:
        self.failures += 1
        full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
        event(log, logging.ERROR, "clip.write_failed", event_id=rec.event_id, part=rec.part,
              attempt=rec.attempts, disk_full=full, error=str(exc))
        self._failed.append(rec)
        dropped = None
        if len(self._failed) > self._max_failed:
            dropped = self._failed.pop(0)
            self.dropped += 1
            event(log, logging.ERROR, "clip.dropped", event_id=dropped.event_id,
                  part=dropped.part, reason="too many clips waiting for the disk")
        self._send(ClipWriteFailed(
            **camera_ids(self._names()), event_id=rec.event_id, part=rec.part, error=str(exc),
            disk_full=full, waiting=len(self._failed), retry_in_s=RETRY_S,
            dropped=None if dropped is None else dropped.stem))

    def _write(self, rec: Recording) -> dict[str, int]:
        names = self._names()
        video_tmp = temp_beside(self._outbox / (rec.stem + VIDEO_SUFFIX))
        try:
            video = write_video(video_tmp, rec.packets)
            thumbnail = self._thumbnail(rec)
            sidecar = build_sidecar(rec, video, video_tmp, thumbnail=thumbnail is not None,
                                    device_id=self._device.device_id, names=names,
                                    wall=self._wall)
            files = publish(self._outbox, rec.stem, video_tmp, thumbnail, sidecar)
        finally:
            video_tmp.unlink(missing_ok=True)
        event(log, logging.INFO, "clip.written", event_id=rec.event_id, part=rec.part,
              duration_s=round(video.duration_s, 2), bytes=sidecar.video.bytes,
              copied=video.copied, detections=len(sidecar.detections))
        self._send(ClipWritten(
            **camera_ids(names), event_id=rec.event_id, part=rec.part, stem=rec.stem,
            files=files, duration_s=sidecar.video.duration_s, start_utc=sidecar.start_utc,
            end_utc=sidecar.end_utc, max_score=sidecar.max_score, trigger=rec.kind))
        return files

    def _thumbnail(self, rec: Recording) -> bytes | None:
        best = rec.best
        if best is None or best.frame is None:
            return None
        frame = best.frame
        height = round(frame.height * THUMBNAIL_WIDTH / frame.width / 2) * 2
        width = min(THUMBNAIL_WIDTH, frame.width)
        image = frame.reformat(width=width, height=min(height, frame.height),
                               format="rgb24").to_ndarray()
        return draw_thumbnail(image, [(d.label, d.score, d.box) for d in best.detections])

