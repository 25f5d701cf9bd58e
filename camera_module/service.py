"""The camera module's wiring: source -> sample -> detect -> decide -> record, one way.

Threads and what each may block on:

- ``source-record`` (and ``source-detect`` when the detect URL differs): the network. Puts
  packets into the ring buffer and the active recordings, decodes the detect stream and
  offers frames to the sampler. Never waits on the detector or the disk.
- ``detect``: the detector's HTTP API (with a timeout). Takes the newest sample, asks the
  detector, runs the trigger, starts and ends recordings, sends event messages.
- ``recording-journal`` (in :class:`~camera_module.recorder.Recorder`): the disk. Appends
  the active recordings to their folders under ``<data-dir>/recordings/`` and fsyncs them.
- ``clip-writer`` (in :class:`~camera_module.publisher.ClipPublisher`): the disk. Makes the
  clips of ended recordings (and, at start, of those an earlier run left) and publishes them.

Every thread is a worker of ``runtime.workers``: an unexpected exception is logged with its
traceback, alerted (``worker.failed``) and the worker restarted with backoff; one that keeps
failing ends the module with exit code 1, so IoT Edge restarts it.

The runtime's status reporter asks :meth:`CameraService.status` for the reported properties
every 10 s, and soon after the stream or the detector goes up or down.

Settings are read live: thresholds, fps, zones, the detector URL and the stream URLs change
without a restart (a changed URL reconnects its source).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from camera_module.decode_mode import DecodeMode
from camera_module.detector import DetectorClient, DetectorError, Scored, encode_jpeg, scaled_size
from camera_module.packets import PacketRing
from camera_module.recorder import Recorder
from camera_module.recording import Observation
from camera_module.sampling import LatestSlot, Sample, Sampler, WallClock
from camera_module.sidecar import camera_ids
from camera_module.source import SourceStats, StreamSource
from camera_module.trigger import Action, EventEnded, EventStarted, PartSplit, Trigger
from config.camera import CameraSettings
from contracts import messages
from contracts.clip import ModelInfo
from edge_link.runtime import MethodHandler, ModuleRuntime, ModuleService
from infra.backoff import Backoff
from infra.logs import event
from infra.stats import percentile

log = logging.getLogger(__name__)

# The ring keeps this much more than the pre-roll: the detector's answer arrives after the
# frame, and a keyframe interval may sit between the pre-roll start and the keyframe before.
RING_SLACK_S = 5.0
LATENCY_WINDOW = 500


def ring_seconds(settings: CameraSettings) -> float:
    """An idle camera's first sighting may come up to two GOPs before the event starts (it is
    seen at one keyframe, full decoding starts at the next), and its pre-roll reaches back
    from that sighting."""
    sampling = settings.sampling
    idle_slack = 2 * sampling.idle_max_gop_s if sampling.idle_mode == "keyframes" else 0.0
    return max(settings.recording.pre_roll_s + RING_SLACK_S + idle_slack,
               settings.recording.on_demand_max_s)


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

    def latency_ms(self, q: float) -> float | None:
        """The ``q``-th percentile of the recent latencies, in milliseconds."""
        value = percentile(self.latencies, q)
        return None if value is None else round(value * 1000, 1)


class CameraService(ModuleService[CameraSettings]):
    """One camera: sources, sampler, detect worker, trigger and recorder."""

    def __init__(self, runtime: ModuleRuntime[CameraSettings], *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.runtime = runtime
        self._clock = clock
        settings = runtime.settings
        self.wall = WallClock(clock())
        self.ring = PacketRing(ring_seconds(settings))
        self.slot = LatestSlot()
        self.sampler = Sampler(lambda: self.runtime.settings.sampling.detect_fps, self.slot,
                               self.wall)
        self.metrics = Metrics()
        self.decode_mode = DecodeMode(lambda: self.runtime.settings.sampling,
                                      lambda: self.runtime.settings.identity.camera_id, clock())
        self.trigger = Trigger(settings.trigger, settings.recording, self._new_event_id)
        data_dir = runtime.options.data_dir
        self.recorder = Recorder(
            self.ring, settings.recording.outbox_dir, self.wall, runtime.link.identity,
            lambda: self.runtime.settings.identity, runtime.send,
            recordings=data_dir / "recordings", state_file=data_dir / "state" / "recorder.json",
            sync_interval_s=lambda: self.runtime.settings.recording.sync_interval_s,
            spawn=runtime.workers.spawn)
        self.client = DetectorClient(settings.sampling.detector_url,
                                     settings.sampling.request_timeout_s)
        self.sources: list[StreamSource] = []
        self._latest: Sample | None = None
        self._model: ModelInfo | None = None
        self._stop = threading.Event()
        self._detect: threading.Thread | None = None
        self._lock = threading.Lock()  # the trigger: detect thread vs settings listener

    def methods(self) -> Mapping[str, MethodHandler]:
        return {"record": self._record_method}

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        self.recorder.start_writer()
        self._start_sources(self.runtime.settings)
        self._detect = self.runtime.workers.spawn("detect", self._detect_loop)

    def stop(self) -> None:
        self._stop.set()
        for source in self.sources:
            source.stop()
        if self._detect is not None:
            self._detect.join(10)
        with self._lock:
            active = self.trigger.active
            if active is not None:
                now = self._clock()
                self.recorder.end(active, self.trigger.part, now)
                self.runtime.send(messages.EventEnded(
                    **camera_ids(self.runtime.settings.identity), event_id=active,
                    end_utc=self.wall.utc(now), parts=self.trigger.part, reason="stopping"))
        self.recorder.stop()

    def _start_sources(self, settings: CameraSettings) -> None:
        stream = settings.stream
        record_url = stream.record_url or stream.detect_url
        get = lambda: self.runtime.settings.stream  # noqa: E731
        common = {"on_status": self._on_status, "clock": self._clock,
                  "spawn": self.runtime.workers.spawn}
        if record_url == stream.detect_url:
            self.sources = [StreamSource("camera", record_url, get,
                                         on_packet=self.recorder.on_packet,
                                         on_frame=self.sampler.offer,
                                         decode_mode=self.decode_mode, **common)]
        else:
            self.sources = [
                StreamSource("record", record_url, get, on_packet=self.recorder.on_packet,
                             **common),
                StreamSource("detect", stream.detect_url, get, on_frame=self.sampler.offer,
                             decode_mode=self.decode_mode, **common),
            ]
        for source in self.sources:
            source.start()

    def _on_status(self, name: str, stats: SourceStats) -> None:
        self.runtime.status_changed()

    # -- settings -------------------------------------------------------------------------

    def on_settings(self, old: CameraSettings, new: CameraSettings,
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
            settings = self.runtime.settings
            if sample is not None:
                self._latest = sample
                scored = self._ask(sample, settings)
                if scored is not None:
                    backoff.reset()
                    self._observe(sample, scored)
                    continue
            self._let_time_pass(settings)
            if sample is not None:
                self._stop.wait(backoff.next())

    def _let_time_pass(self, settings: CameraSettings) -> None:
        """No answer (no frame, or the detector is down): time still passes, so an event whose
        post-roll has run out ends and its clip is written. Ticking behind by one request
        keeps an event from ending while the frame that would confirm it is at the detector."""
        behind = settings.sampling.request_timeout_s + 1.0 / settings.sampling.detect_fps
        with self._lock:
            actions = self.trigger.tick(self._clock() - behind)
        self._decide(actions, None)
        self.recorder.close_late(self._clock())

    def _observe(self, sample: Sample, scored: Scored) -> None:
        with self._lock:
            counted = self.trigger.counting(scored.detections)
            obs = Observation(sample.t, counted, max((d.score for d in counted), default=0.0),
                              sample.frame)
            actions = self.trigger.observe(sample.t, scored.detections)
            if self.trigger.stirred(scored.detections,
                                    self.runtime.settings.sampling.wake_score):
                self.decode_mode.stir(sample.t)
        # Order matters: a recording started by these actions takes the history up to (not
        # including) this sample, then this sample with its frame (the thumbnail).
        self._decide(actions, obs)
        self.recorder.observe(obs, scored.model)
        self.metrics.latencies.append(self._clock() - sample.arrived)

    def _ask(self, sample: Sample, settings: CameraSettings) -> Scored | None:
        """One detector round trip; None (counted, logged once per outage) when it fails."""
        client = self.client
        try:
            served = client.model or client.fetch_model()
            size = scaled_size(sample.frame.width, sample.frame.height, served.width,
                               served.height)
            jpeg = encode_jpeg(sample.frame, size, settings.sampling.jpeg_quality)
            scored = client.score(jpeg, settings.identity.camera_id, sample.wall)
        except DetectorError as exc:
            self.metrics.detector_failures += 1
            self.metrics.detector_error = str(exc)
            if self.metrics.detector_status != "down":
                self.metrics.detector_status = "down"
                event(log, logging.WARNING, "detector.down", error=str(exc),
                      failures=self.metrics.detector_failures)
                self.runtime.status_changed()
            return None
        self.metrics.samples += 1
        self.metrics.detector_ok += 1
        self._model = scored.model
        if self.metrics.detector_status != "up":
            self.metrics.detector_status = "up"
            event(log, logging.INFO, "detector.up", model=scored.model.name,
                  version=scored.model.version)
            self.runtime.status_changed()
        return scored

    # -- decisions ------------------------------------------------------------------------

    def _decide(self, actions: list[Action], obs: Observation | None) -> None:
        settings = self.runtime.settings
        for action in actions:
            if isinstance(action, EventStarted):
                self._event_started(action, obs, settings)
            elif isinstance(action, PartSplit):
                event(log, logging.INFO, "event.part", event_id=action.event_id,
                      part=action.part)
                self.recorder.end(action.event_id, action.part - 1, action.t)
                if settings.recording.enabled:
                    self.recorder.start(action.event_id, action.part, action.t, action.t,
                                        self._thresholds(settings), self._model)
            elif isinstance(action, EventEnded):
                event(log, logging.INFO, "event.ended", event_id=action.event_id,
                      parts=action.part)
                self.recorder.end(action.event_id, action.part, action.t)
                self.runtime.send(messages.EventEnded(
                    **camera_ids(settings.identity), event_id=action.event_id,
                    end_utc=self.wall.utc(action.t),
                    last_confirmed_utc=self.wall.utc(action.last_confirmed), parts=action.part))

    def _event_started(self, action: EventStarted, obs: Observation | None,
                       settings: CameraSettings) -> None:
        self.metrics.events += 1
        event(log, logging.INFO, "event.started", event_id=action.event_id)
        self.runtime.send(messages.EventStarted(
            **camera_ids(settings.identity), event_id=action.event_id,
            start_utc=self.wall.utc(action.t), clip_from_utc=self.wall.utc(action.clip_from),
            max_score=obs.best if obs else None,
            labels=sorted({d.label for d in obs.detections}) if obs else []))
        if settings.recording.enabled:
            self.recorder.start(action.event_id, 1, action.clip_from, action.t,
                                self._thresholds(settings), self._model)

    # -- direct method --------------------------------------------------------------------

    def _record_method(self, payload: object) -> tuple[int, dict[str, object]]:
        """``record {"seconds": N}``: the last N seconds as a clip, now. Returns its stem."""
        settings = self.runtime.settings
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
                                     self._model)
        if not rec.packets:
            return 503, {"error": "no video buffered yet (is the camera online?)"}
        if latest is not None:
            rec.add(Observation(latest.t, [], 0.0, latest.frame))
        covered = rec.packets[-1].t - rec.packets[0].t
        files = self.recorder.write(rec)
        if files is None:
            return 507, {"error": "the clip could not be written; see the alerts output",
                         "eventId": event_id}
        return 200, {"stem": rec.stem, "eventId": event_id, "files": files,
                     "seconds": round(covered, 2)}

    # -- status ---------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """The reported-property sections; also what tests and the benchmark read."""
        m = self.metrics
        return {
            "stream": {s.name: s.stats.report() for s in self.sources},
            "sampling": {"samples": m.samples, "skipped": self.slot.skipped,
                         "slotDepth": self.slot.depth,
                         "latencyP50Ms": m.latency_ms(50), "latencyP95Ms": m.latency_ms(95),
                         **self.decode_mode.report()},
            "detector": {"status": m.detector_status, "ok": m.detector_ok,
                         "failures": m.detector_failures, "lastError": m.detector_error,
                         "model": None if self._model is None else
                         {"name": self._model.name, "version": self._model.version}},
            "recording": self._recording_status(),
        }

    def _recording_status(self) -> dict[str, Any]:
        counters = self.recorder.counters
        return {"events": self.metrics.events, "activeEvent": self.trigger.active,
                "clipsWritten": counters.written, "writeFailures": counters.failures,
                "clipsDropped": counters.dropped, "droppedClips": counters.dropped_clips,
                "recoveredClips": counters.recovered, "pendingClips": self.recorder.pending(),
                "ring": self.ring.stats()}

    # -- helpers --------------------------------------------------------------------------

    def _new_event_id(self, t: float) -> str:
        stamp = self.wall.utc(t).strftime("%Y%m%dT%H%M%SZ")
        return f"{stamp}-{self.runtime.settings.identity.camera_id}-{uuid.uuid4().hex[:6]}"

    def _thresholds(self, settings: CameraSettings) -> dict[str, object]:
        """The trigger settings in force, for the sidecar: how this clip came to be."""
        return {**settings.trigger.model_dump(mode="json"),
                "pre_roll_s": settings.recording.pre_roll_s,
                "post_roll_s": settings.recording.post_roll_s,
                "max_clip_s": settings.recording.max_clip_s}
