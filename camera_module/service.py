"""The camera module's wiring: source -> sample -> detect -> decide -> record, one way.

Threads and what each may block on:

- ``source-record`` (and ``source-detect`` when the detect URL differs): the network. Puts
  packets into the ring buffer and the active recordings, decodes the detect stream and
  offers frames to the sampler. Never waits on the detector or the disk.
- ``detect``: the detector's HTTP API (with a timeout). Takes the newest sample, asks the
  detector, runs the trigger, starts and ends recordings, sends event messages.
- ``clip-writer`` (in :class:`~camera_module.recorder.Recorder`): the disk.
- ``status``: reports counters to the twin's reported properties now and then.

Settings are read live: thresholds, fps, zones, the detector URL and the stream URLs change
without a restart (a changed URL reconnects its source).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from datetime import datetime
from typing import Any

from camera_module.detector import (
    DetectorClient,
    DetectorError,
    ModelInfo,
    Scored,
    encode_jpeg,
    scaled_size,
)
from camera_module.packets import EncodedPacket, PacketRing
from camera_module.recorder import Identity, Observation, Recorder
from camera_module.sampling import LatestSlot, Sample, Sampler, WallClock
from camera_module.source import SourceStats, StreamSource
from camera_module.trigger import Action, EventEnded, EventStarted, PartSplit, Trigger
from config.camera import CameraSettings
from contracts.clip import ModelInfo as ClipModel
from edge_link.runtime import ModuleRuntime
from infra.backoff import Backoff
from infra.logs import event

log = logging.getLogger(__name__)

STATUS_INTERVAL_S = 10.0
# The ring keeps this much more than the pre-roll: the detector's answer arrives after the
# frame, and a keyframe interval may sit between the pre-roll start and the keyframe before.
RING_SLACK_S = 5.0
LATENCY_WINDOW = 500


def ring_seconds(settings: CameraSettings) -> float:
    return max(settings.recording.pre_roll_s + RING_SLACK_S, settings.recording.on_demand_max_s)


class Metrics:
    """Counters and the recent capture-to-decision latencies (for p50/p95)."""

    def __init__(self) -> None:
        self.samples = 0
        self.detector_ok = 0
        self.detector_failures = 0
        self.detector_status = "unknown"
        self.detector_error: str | None = None
        self.events = 0
        self.latencies: deque[float] = deque(maxlen=LATENCY_WINDOW)

    def percentile(self, q: float) -> float | None:
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class CameraService:
    """One camera: sources, sampler, detect worker, trigger and recorder."""

    def __init__(self, runtime: ModuleRuntime, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.runtime = runtime
        self._clock = clock
        settings: CameraSettings = runtime.settings
        self.wall = WallClock(clock())
        self.ring = PacketRing(ring_seconds(settings))
        self.slot = LatestSlot()
        self.sampler = Sampler(lambda: self.runtime.settings.sampling.detect_fps, self.slot,
                               self.wall)
        self.metrics = Metrics()
        self.trigger = Trigger(settings.trigger, settings.recording, self._new_event_id)
        self.recorder = Recorder(self.ring, settings.recording.outbox_dir, self.wall,
                                 self._identity, self._notify)
        self.client = DetectorClient(settings.sampling.detector_url,
                                     settings.sampling.request_timeout_s)
        self.sources: list[StreamSource] = []
        self._history: deque[Observation] = deque()
        self._latest: Sample | None = None
        self._model: ModelInfo | None = None
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()  # the trigger: detect thread vs settings listener
        self._report_now = threading.Event()
        runtime.subscribe(self._on_settings)
        runtime.register_method("record", self._record_method)

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        self.recorder.start_writer()
        self._start_sources(self.runtime.settings)
        for name, target in (("detect", self._detect_loop), ("status", self._status_loop)):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        self._report_now.set()  # wake the status thread now, not at its next interval
        for source in self.sources:
            source.stop()
        for thread in self._threads:
            thread.join(10)
        with self._lock:
            active = self.trigger.active
            if active is not None:
                now = self._clock()
                self.recorder.end(active, self.trigger.part, now)
                self._send("event_ended", {"eventId": active, "endUtc": _iso(self.wall.utc(now)),
                                           "parts": self.trigger.part, "reason": "stopping"})
        self.recorder.stop()
        self._report()

    def _start_sources(self, settings: CameraSettings) -> None:
        stream = settings.stream
        record_url = stream.record_url or stream.detect_url
        get = lambda: self.runtime.settings.stream  # noqa: E731
        if record_url == stream.detect_url:
            self.sources = [StreamSource("camera", record_url, get, on_packet=self._on_packet,
                                         on_frame=self.sampler.offer, on_status=self._on_status,
                                         clock=self._clock)]
        else:
            self.sources = [
                StreamSource("record", record_url, get, on_packet=self._on_packet,
                             on_status=self._on_status, clock=self._clock),
                StreamSource("detect", stream.detect_url, get, on_frame=self.sampler.offer,
                             on_status=self._on_status, clock=self._clock),
            ]
        for source in self.sources:
            source.start()

    def _on_packet(self, packet: EncodedPacket) -> None:
        self.ring.append(packet)
        self.recorder.on_packet(packet)

    def _on_status(self, name: str, stats: SourceStats) -> None:
        self._report_now.set()

    # -- settings -------------------------------------------------------------------------

    def _on_settings(self, old: CameraSettings, new: CameraSettings,
                     changed: tuple[str, ...]) -> None:
        with self._lock:
            self.trigger.configure(new.trigger, new.recording)
        self.ring.keep_s = ring_seconds(new)
        if new.sampling.detector_url != self.client.base_url.rstrip("/") or \
                new.sampling.request_timeout_s != self.client.timeout_s:
            self.client = DetectorClient(new.sampling.detector_url,
                                         new.sampling.request_timeout_s)
        if (old.stream.detect_url, old.stream.record_url) != (new.stream.detect_url,
                                                               new.stream.record_url):
            for source in self.sources:
                source.stop()
            self._start_sources(new)
        event(log, logging.INFO, "camera.settings_applied", changed=list(changed))

    # -- detect loop ----------------------------------------------------------------------

    def _detect_loop(self) -> None:
        # The detector runs on the same machine: probing it every 2 s at most costs little
        # and keeps the camera blind for under 2 s once it is back.
        backoff = Backoff(0.5, 2.0)
        while not self._stop.is_set():
            sample = self.slot.take(0.2)
            settings: CameraSettings = self.runtime.settings
            if sample is not None:
                self._latest = sample
            scored = None if sample is None else self._ask(sample, settings)
            if scored is None:
                # No answer (no frame, or the detector is down): time still passes, so an
                # event whose post-roll has run out ends and its clip is written. Ticking
                # behind by one request keeps an event from ending while the frame that
                # would confirm it is at the detector.
                behind = settings.sampling.request_timeout_s + 1.0 / settings.sampling.detect_fps
                with self._lock:
                    actions = self.trigger.tick(self._clock() - behind)
                self._decide(actions, None)
                self.recorder.close_late(self._clock())
                if sample is not None:
                    self._stop.wait(backoff.next())
                continue
            backoff.reset()
            with self._lock:
                counted = self.trigger.counting(scored.detections)
                obs = Observation(sample.t, counted, max((d.score for d in counted),
                                                         default=0.0), sample.frame)
                actions = self.trigger.observe(sample.t, scored.detections)
            # Order matters: a recording started by these actions takes the history up to
            # (not including) this sample, then this sample with its frame (the thumbnail).
            self._decide(actions, obs)
            self.recorder.observe(obs, _clip_model(scored.model))
            self._remember(obs, settings)
            self.metrics.latencies.append(self._clock() - sample.arrived)

    def _ask(self, sample: Sample, settings: CameraSettings) -> Scored | None:
        """One detector round trip; None (counted, logged once per outage) when it fails."""
        client = self.client
        try:
            model = client.model or client.fetch_model()
            size = scaled_size(sample.frame.width, sample.frame.height, model.width,
                               model.height)
            jpeg = encode_jpeg(sample.frame, size, settings.sampling.jpeg_quality)
            scored = client.score(jpeg, settings.identity.camera_id, sample.wall)
        except DetectorError as exc:
            self.metrics.detector_failures += 1
            self.metrics.detector_error = str(exc)
            if self.metrics.detector_status != "down":
                self.metrics.detector_status = "down"
                event(log, logging.WARNING, "detector.down", error=str(exc),
                      failures=self.metrics.detector_failures)
                self._report_now.set()
            return None
        self.metrics.samples += 1
        self.metrics.detector_ok += 1
        self._model = scored.model
        if self.metrics.detector_status != "up":
            self.metrics.detector_status = "up"
            event(log, logging.INFO, "detector.up", model=scored.model.name,
                  version=scored.model.version)
            self._report_now.set()
        return scored

    def _remember(self, obs: Observation, settings: CameraSettings) -> None:
        """Recent observations, so a clip's pre-roll has the detections that led to it."""
        self._history.append(Observation(obs.t, obs.detections, obs.best))
        horizon = obs.t - ring_seconds(settings)
        while self._history and self._history[0].t < horizon:
            self._history.popleft()

    def _decide(self, actions: list[Action], obs: Observation | None) -> None:
        settings: CameraSettings = self.runtime.settings
        for action in actions:
            if isinstance(action, EventStarted):
                self.metrics.events += 1
                event(log, logging.INFO, "event.started", event_id=action.event_id)
                self._send("event_started", {
                    "eventId": action.event_id, "startUtc": _iso(self.wall.utc(action.t)),
                    "clipFromUtc": _iso(self.wall.utc(action.clip_from)),
                    "maxScore": obs.best if obs else None,
                    "labels": sorted({d.label for d in obs.detections}) if obs else []})
                if settings.recording.enabled:
                    self.recorder.start(action.event_id, 1, action.clip_from, action.t,
                                        self._thresholds(settings), list(self._history),
                                        model=_clip_model(self._model))
            elif isinstance(action, PartSplit):
                event(log, logging.INFO, "event.part", event_id=action.event_id,
                      part=action.part)
                self.recorder.end(action.event_id, action.part - 1, action.t)
                if settings.recording.enabled:
                    self.recorder.start(action.event_id, action.part, action.t, action.t,
                                        self._thresholds(settings), [],
                                        model=_clip_model(self._model))
            elif isinstance(action, EventEnded):
                event(log, logging.INFO, "event.ended", event_id=action.event_id,
                      parts=action.part)
                self.recorder.end(action.event_id, action.part, action.t)
                self._send("event_ended", {
                    "eventId": action.event_id, "endUtc": _iso(self.wall.utc(action.t)),
                    "lastConfirmedUtc": _iso(self.wall.utc(action.last_confirmed)),
                    "parts": action.part})

    # -- direct method --------------------------------------------------------------------

    def _record_method(self, payload: Any) -> tuple[int, Any]:
        """``record {"seconds": N}``: the last N seconds as a clip, now. Returns its stem."""
        settings: CameraSettings = self.runtime.settings
        limit = settings.recording.on_demand_max_s
        seconds = payload.get("seconds") if isinstance(payload, dict) else None
        if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds <= 0:
            return 400, {"error": "payload must be {\"seconds\": N} with N > 0"}
        if seconds > limit:
            return 400, {"error": f"seconds ({seconds}) exceeds recording.on_demand_max_s "
                                  f"({limit})"}
        now = self._clock()
        event_id = self._new_event_id(now)
        latest = self._latest
        rec = self.recorder.snapshot(event_id, now - seconds, now, self._thresholds(settings),
                                     list(self._history), _clip_model(self._model))
        if not rec.packets:
            return 503, {"error": "no video buffered yet (is the camera online?)"}
        if latest is not None:
            rec.add(Observation(latest.t, [], 0.0, latest.frame))
        files = self.recorder.write(rec)
        if files is None:
            return 507, {"error": "the clip could not be written; see the alerts output",
                         "eventId": event_id}
        covered = rec.packets[-1].t - rec.packets[0].t
        return 200, {"stem": rec.stem, "eventId": event_id, "files": files,
                     "seconds": round(covered, 2)}

    # -- reporting ------------------------------------------------------------------------

    def _status_loop(self) -> None:
        while not self._stop.is_set():
            self._report_now.wait(STATUS_INTERVAL_S)
            self._report_now.clear()
            if not self._stop.is_set():
                self._report()

    def status(self) -> dict[str, Any]:
        """Everything the reported properties say, also for tests and the benchmark."""
        m = self.metrics
        p50, p95 = m.percentile(0.5), m.percentile(0.95)
        return {
            "stream": {s.name: s.stats.report() for s in self.sources},
            "sampling": {"samples": m.samples, "skipped": self.slot.skipped,
                         "slotDepth": self.slot.depth,
                         "latencyP50Ms": None if p50 is None else round(p50 * 1000, 1),
                         "latencyP95Ms": None if p95 is None else round(p95 * 1000, 1)},
            "detector": {"status": m.detector_status, "ok": m.detector_ok,
                         "failures": m.detector_failures, "lastError": m.detector_error,
                         "model": None if self._model is None else
                         {"name": self._model.name, "version": self._model.version}},
            "recording": {"events": m.events, "activeEvent": self.trigger.active,
                          "clipsWritten": self.recorder.written,
                          "writeFailures": self.recorder.failures,
                          "clipsDropped": self.recorder.dropped,
                          "pendingClips": self.recorder.pending(),
                          "ring": self.ring.stats()},
        }

    def _report(self) -> None:
        status = self.status()
        for section, value in status.items():
            self.runtime.report(section, value)

    # -- helpers --------------------------------------------------------------------------

    def _identity(self) -> Identity:
        ids = self.runtime.settings.identity
        return Identity(self.runtime.link.identity.device_id, ids.train_id, ids.camera_id)

    def _new_event_id(self, t: float) -> str:
        stamp = self.wall.utc(t).strftime("%Y%m%dT%H%M%SZ")
        return f"{stamp}-{self.runtime.settings.identity.camera_id}-{uuid.uuid4().hex[:6]}"

    def _thresholds(self, settings: CameraSettings) -> dict[str, Any]:
        return {**settings.trigger.model_dump(mode="json"),
                "pre_roll_s": settings.recording.pre_roll_s,
                "post_roll_s": settings.recording.post_roll_s,
                "max_clip_s": settings.recording.max_clip_s}

    def _notify(self, output: str, msg_type: str, body: dict[str, Any]) -> None:
        ids = self.runtime.settings.identity
        self.runtime.send_body(output, msg_type, {"trainId": ids.train_id,
                                             "cameraId": ids.camera_id, **body})

    def _send(self, msg_type: str, body: dict[str, Any]) -> None:
        self._notify("events", msg_type, body)


def _clip_model(model: ModelInfo | None) -> ClipModel | None:
    return None if model is None else ClipModel(name=model.name, version=model.version)


def _iso(value: datetime) -> str:
    return value.isoformat(timespec="milliseconds")
