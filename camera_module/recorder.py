"""Recordings: which packets and detections go into which clip, written to disk as they come.

A recording starts from the ring buffer (the pre-roll, from a keyframe on) and the recent
observations the recorder remembers for it, then takes live packets until its end time has
passed. From its first moment it is appended to its own folder under ``recordings/``
(:mod:`camera_module.journal`) by the journal thread, which fsyncs every
``recording.sync_interval_s``: a kill -9 or a power cut in the middle of an event leaves all
but the last second or so on disk, and the next start makes a clip of it. Once it has ended
it goes to the clip writer (:mod:`camera_module.publisher`). Neither the stream nor the detect
loop ever waits on the disk.

A disk that refuses the journal (full) keeps the refused packets in memory, says so once
(``clip.write_failed``) and is tried again at every sync; the recording carries on.
"""

from __future__ import annotations

import errno
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from camera_module import spool
from camera_module.packets import EncodedPacket, PacketRing
from camera_module.publisher import ClipPublisher, Counters, camera_ids
from camera_module.recording import ClipKind, Observation, Recording
from camera_module.sampling import WallClock
from camera_module.source import Spawn, plain_thread
from config.camera import IdentitySettings
from contracts.clip import ModelInfo
from contracts.messages import CameraMessage, ClipWriteFailed
from edge_link.base import Identity
from infra.logs import event

log = logging.getLogger(__name__)

# A recording whose end passed this long ago without the packets to prove it (the camera
# went away) is written with what it has.
LATE_CLOSE_S = 3.0


@dataclass(frozen=True, slots=True)
class _Item:
    """One thing for the journal thread to do for one recording, in the order it happened."""

    kind: Literal["open", "packet", "obs", "close"]
    rec: Recording
    packet: EncodedPacket | None = None


class Recorder:
    """Owns the active recordings, the pre-roll's observations and the journal thread; the
    clip writer is its :attr:`publisher`."""

    def __init__(self, ring: PacketRing, outbox: Path, wall: WallClock, device: Identity,
                 names: Callable[[], IdentitySettings], send: Callable[[CameraMessage], None],
                 *, recordings: Path, state_file: Path | None = None,
                 sync_interval_s: Callable[[], float] = lambda: 1.0, max_failed: int = 3,
                 spawn: Spawn = plain_thread) -> None:
        self._ring = ring
        self._recordings = recordings
        self._wall = wall
        self._names = names
        self._send = send
        self._sync_interval_s = sync_interval_s
        self._spawn = spawn
        self.publisher = ClipPublisher(outbox, recordings, wall, device, names, send,
                                       state_file=state_file, max_failed=max_failed,
                                       spawn=spawn)
        self._lock = threading.Lock()
        self._active: list[Recording] = []
        # Observations as long back as the ring holds video, without their frames: a clip's
        # pre-roll gets the detections that led to it.
        self._history: deque[Observation] = deque()
        self._queue: queue.Queue[_Item | None] = queue.Queue()
        self._writing: list[Recording] = []  # journal thread only
        self._thread: threading.Thread | None = None

    @property
    def counters(self) -> Counters:
        return self.publisher.counters

    @property
    def dropped(self) -> int:
        return self.publisher.counters.dropped

    # -- live side (stream, detect and method threads) ------------------------------------

    def on_packet(self, packet: EncodedPacket) -> None:
        """Every packet of the record stream: into the ring, and into each active recording
        (under one lock, so a recording starting now takes each packet exactly once)."""
        with self._lock:
            self._ring.append(packet)
            for rec in list(self._active):
                self._queue.put(_Item("packet", rec, packet))
                if rec.end_t is not None and packet.t > rec.end_t:
                    self._close(rec)

    def start(self, event_id: str, part: int, clip_from: float, trigger_t: float,
              thresholds: dict[str, object], model: ModelInfo | None) -> Recording:
        """Begin a part from the ring buffer; live packets are added until it ends."""
        with self._lock:
            rec = self._from_ring(event_id, part, clip_from, trigger_t, thresholds, "detection",
                                  model)
            self._active.append(rec)
            self._queue.put(_Item("open", rec))
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
                    self._queue.put(_Item("obs", rec))
            self._history.append(obs.without_frame())
            horizon = obs.t - self._ring.keep_s
            while self._history and self._history[0].t < horizon:
                self._history.popleft()

    def end(self, event_id: str, part: int, end_t: float) -> None:
        """Part ``part`` ends at ``end_t``; it is closed once packets past that arrived."""
        with self._lock:
            for rec in list(self._active):
                if rec.event_id == event_id and rec.part == part:
                    rec.end_t = end_t
                    if self._ring.newest_t() > end_t:
                        self._close(rec)

    def close_late(self, now: float) -> None:
        """Close recordings whose end passed long ago although no packet showed it."""
        with self._lock:
            for rec in [r for r in self._active
                        if r.end_t is not None and now > r.end_t + LATE_CLOSE_S]:
                self._close(rec)

    def _close(self, rec: Recording) -> None:
        self._active.remove(rec)
        self._queue.put(_Item("close", rec))

    # -- threads --------------------------------------------------------------------------

    def start_writer(self) -> None:
        """Queue what an earlier run left, then start the journal and clip-writer threads."""
        self.publisher.recover()
        self.publisher.start()
        self._thread = self._spawn("recording-journal", self._journal_loop)

    def stop(self, timeout_s: float = 30.0) -> None:
        """Close what is still open (the module is stopping), write it, end the threads."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            for rec in list(self._active):
                rec.end_t = rec.end_t if rec.end_t is not None else float("inf")
                self._close(rec)
        self._queue.put(None)
        if self._thread is not None:
            self._thread.join(max(0.0, deadline - time.monotonic()))
        self.publisher.stop(max(0.0, deadline - time.monotonic()))

    def pending(self) -> int:
        return self.publisher.pending()

    def write(self, rec: Recording) -> dict[str, int] | None:
        """Write a recording now, in the calling thread (an on-demand clip)."""
        return self.publisher.write(rec)

    def _journal_loop(self) -> None:
        next_sync = time.monotonic() + self._sync_interval_s()
        while True:
            item: _Item | None | Literal["idle"]
            try:
                item = self._queue.get(timeout=max(0.0, next_sync - time.monotonic()))
            except queue.Empty:
                item = "idle"  # nothing came: only the sync may be due
            if item is None:
                self._sync_all()
                for rec in self._writing:
                    spool.close_files(rec)
                return
            if isinstance(item, _Item):
                self._handle(item)
            if time.monotonic() >= next_sync:
                self._sync_all()
                next_sync = time.monotonic() + self._sync_interval_s()

    def _handle(self, item: _Item) -> None:
        rec = item.rec
        if item.packet is not None:
            rec.packets.append(item.packet)
        if item.kind == "open":
            self._writing.append(rec)
        if item.kind == "close":
            self._writing.remove(rec)
            if self._flush(rec):
                self._durably(rec, spool.end)
            self.publisher.submit(rec)
        elif not rec.disk_alerted:  # a refusing disk is tried again at the next sync
            self._flush(rec)

    def _sync_all(self) -> None:
        """Once a sync interval: retry what the disk refused, and fsync what was written."""
        for rec in self._writing:
            if rec.disk_alerted and self._flush(rec):
                rec.disk_alerted = False
                event(log, logging.INFO, "recording.disk_back", event_id=rec.event_id,
                      part=rec.part)
            self._durably(rec, spool.sync)

    def _flush(self, rec: Recording) -> bool:
        return self._durably(rec, lambda r: spool.flush(r, self._recordings, self._wall))

    def _durably(self, rec: Recording, action: Callable[[Recording], None]) -> bool:
        try:
            action(rec)
        except OSError as exc:
            self._journal_failed(rec, exc)
            return False
        return True

    def _journal_failed(self, rec: Recording, exc: OSError) -> None:
        """The disk refused part of a recording: keep it in memory, say so once."""
        if rec.disk_alerted:
            return
        rec.disk_alerted = True
        self.counters.failures += 1
        full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
        event(log, logging.ERROR, "recording.journal_failed", event_id=rec.event_id,
              part=rec.part, disk_full=full, error=str(exc), in_memory=len(rec.packets))
        self._send(ClipWriteFailed(
            **camera_ids(self._names()), event_id=rec.event_id, part=rec.part, error=str(exc),
            disk_full=full, waiting=sum(r.disk_alerted for r in self._writing),
            retry_in_s=self._sync_interval_s()))
