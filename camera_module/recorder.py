"""Recordings: which packets and detections go into which clip, and getting it to disk.

A recording starts from the ring buffer (the pre-roll, from a keyframe on), then collects
live packets until its end time has passed, and is handed to a writer thread, so neither the
stream nor the detect loop ever waits on the disk. A clip that cannot be written (a full
disk) stays in memory and is retried; only when too many are waiting is the oldest given up,
and that is reported as an alert rather than lost silently.
"""

from __future__ import annotations

import errno
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import av

from camera_module.clipwriter import (
    ClipError,
    draw_thumbnail,
    publish,
    sha256_file,
    temp_path,
    write_video,
)
from camera_module.packets import EncodedPacket, PacketRing
from camera_module.sampling import WallClock
from contracts.clip import (
    VIDEO_SUFFIX,
    ClipSidecar,
    FrameDetections,
    ModelInfo,
    VideoFacts,
    clip_stem,
)
from contracts.detection import Detection
from infra.logs import event

log = logging.getLogger(__name__)

THUMBNAIL_WIDTH = 640
# A recording whose end passed this long ago without the packets to prove it (the camera
# went away) is written with what it has.
LATE_CLOSE_S = 3.0
RETRY_S = 15.0


@dataclass
class Observation:
    """What the detector said about one sample; ``frame`` only while it may be a thumbnail."""

    t: float
    detections: list[Detection]
    best: float
    frame: av.VideoFrame | None = None


@dataclass
class Recording:
    """One part of one event (or an on-demand clip) on its way to the outbox."""

    event_id: str
    part: int
    trigger_t: float
    kind: str  # "detection" or "on_demand"
    thresholds: dict[str, Any]
    packets: list[EncodedPacket]
    observations: list[Observation] = field(default_factory=list)
    best: Observation | None = None
    model: ModelInfo | None = None
    end_t: float | None = None
    attempts: int = 0

    @property
    def stem(self) -> str:
        return clip_stem(self.event_id, self.part)

    def add(self, obs: Observation) -> None:
        self.observations.append(Observation(obs.t, obs.detections, obs.best))
        if obs.frame is not None and (self.best is None or obs.best > self.best.best):
            self.best = obs


@dataclass(frozen=True)
class Identity:
    device_id: str
    train_id: str
    camera_id: str


class Recorder:
    """Owns the active recordings and the writer thread."""

    def __init__(self, ring: PacketRing, outbox: Path, wall: WallClock,
                 identity: Callable[[], Identity],
                 notify: Callable[[str, str, dict[str, Any]], None], *,
                 max_failed: int = 3) -> None:
        self._ring = ring
        self._outbox = outbox
        self._wall = wall
        self._identity = identity
        self._notify = notify
        self._max_failed = max_failed
        self._lock = threading.Lock()
        self._active: list[Recording] = []
        self._jobs: queue.Queue[Recording | None] = queue.Queue()
        self._failed: list[Recording] = []
        self._thread: threading.Thread | None = None
        self.written = 0
        self.failures = 0
        self.dropped = 0

    # -- live side (stream and detect threads) --------------------------------------------

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
              thresholds: dict[str, Any], history: list[Observation], kind: str = "detection",
              model: ModelInfo | None = None) -> Recording:
        """Begin a part from the ring buffer; live packets are added until it ends."""
        rec = self._from_ring(event_id, part, clip_from, trigger_t, thresholds, history, kind,
                              model)
        with self._lock:
            self._active.append(rec)
        return rec

    def snapshot(self, event_id: str, clip_from: float, now: float,
                 thresholds: dict[str, Any], history: list[Observation],
                 model: ModelInfo | None) -> Recording:
        """What the ring holds from ``clip_from`` to ``now``, for a clip written at once."""
        rec = self._from_ring(event_id, 1, clip_from, now, thresholds, history, "on_demand",
                              model)
        rec.end_t = now
        rec.packets = [p for p in rec.packets if p.t <= now]
        return rec

    def _from_ring(self, event_id: str, part: int, clip_from: float, trigger_t: float,
                   thresholds: dict[str, Any], history: list[Observation], kind: str,
                   model: ModelInfo | None) -> Recording:
        rec = Recording(event_id, part, trigger_t, kind, thresholds, self._ring.since(clip_from),
                        model=model)
        first = rec.packets[0].t if rec.packets else clip_from
        for obs in history:
            if obs.t >= first:
                rec.add(obs)
        return rec

    def observe(self, obs: Observation, model: ModelInfo | None) -> None:
        with self._lock:
            for rec in self._active:
                if rec.end_t is None or obs.t <= rec.end_t:
                    rec.add(obs)
                    rec.model = model or rec.model

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
            self._notify("alerts", "clip_failed", {"eventId": rec.event_id, "part": rec.part,
                                                   "reason": str(exc)})
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
        self._notify("alerts", "disk_full" if full else "clip_write_failed", {
            "eventId": rec.event_id, "part": rec.part, "error": str(exc),
            "waiting": len(self._failed), "retryInS": RETRY_S,
            "dropped": None if dropped is None else dropped.stem})

    def _write(self, rec: Recording) -> dict[str, int]:
        stem = rec.stem
        video_tmp = temp_path(self._outbox, stem + VIDEO_SUFFIX)
        try:
            video = write_video(video_tmp, rec.packets)
            size = video_tmp.stat().st_size
            digest = sha256_file(video_tmp)
            frames = [FrameDetections(
                t_s=round(obs.t - video.first_t, 3),
                detections=list(obs.detections))
                for obs in rec.observations if video.first_t <= obs.t <= video.last_t
                and obs.detections]
            scores = [d.score for f in frames for d in f.detections]
            thumbnail = self._thumbnail(rec)
            ids = self._identity()
            sidecar = ClipSidecar(
                event_id=rec.event_id, part=rec.part, device_id=ids.device_id,
                train_id=ids.train_id, camera_id=ids.camera_id,
                start_utc=self._wall.utc(video.first_t), end_utc=self._wall.utc(video.last_t),
                trigger_utc=self._wall.utc(rec.trigger_t),
                video=VideoFacts(codec=video.codec, width=video.width, height=video.height,
                                 fps=video.fps, duration_s=round(video.duration_s, 3),
                                 bytes=size, sha256=digest),
                thumbnail=thumbnail is not None,
                model=rec.model or ModelInfo(name="unknown", version="unknown"),
                thresholds=rec.thresholds, detections=frames,
                max_score=max(scores, default=0.0),
                labels=sorted({d.label for f in frames for d in f.detections}),
                trigger=rec.kind, copied=video.copied,
            )
            files = publish(self._outbox, stem, video_tmp, thumbnail, sidecar)
        finally:
            video_tmp.unlink(missing_ok=True)
        event(log, logging.INFO, "clip.written", event_id=rec.event_id, part=rec.part,
              duration_s=round(video.duration_s, 2), bytes=size, copied=video.copied,
              detections=len(frames))
        self._notify("events", "clip_written", {
            "eventId": rec.event_id, "part": rec.part, "stem": stem, "files": files,
            "durationS": round(video.duration_s, 3), "startUtc": _iso(sidecar.start_utc),
            "endUtc": _iso(sidecar.end_utc), "maxScore": sidecar.max_score,
            "trigger": rec.kind})
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


def _iso(value: datetime) -> str:
    return value.isoformat(timespec="milliseconds")
