"""The camera's status as Prometheus metrics, every series labelled with its ``camera``.

Rendered from :meth:`CameraService.status`, the same snapshot the reported properties carry,
so the two cannot disagree; the IoT Edge metrics collector scrapes it from ``/metrics``
(:class:`infra.prometheus.MetricsEndpoint`). A train's cameras share one collector, so the
``camera`` and ``train`` labels are what tells their series apart.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from config.camera import CameraSettings
from edge_link.runtime import ModuleRuntime, ModuleService
from infra.logs import event
from infra.prometheus import MetricsEndpoint, Sample, family

log = logging.getLogger(__name__)

Status = Mapping[str, Any]


def render(status: Status, *, train: str, camera: str) -> str:
    """The exposition text of one camera."""
    ids = {"train": train, "camera": camera}
    streams = status.get("stream", {})
    sampling = status.get("sampling", {})
    detector = status.get("detector", {})
    recording = status.get("recording", {})

    def per_stream(key: str) -> list[Sample]:
        return [({**ids, "stream": name}, int(s.get(key) or 0)) for name, s in streams.items()]

    def one(value: Any) -> list[Sample]:
        return [] if value is None else [(ids, value)]

    lines: list[str] = []
    lines += family("camera_stream_up", "gauge", "1 while the stream delivers frames.",
                    [({**ids, "stream": name}, int(s.get("status") == "online"))
                     for name, s in streams.items()])
    for key, help_text in (("packets", "Access units read from the stream."),
                           ("frames", "Frames decoded (detect stream)."),
                           ("reconnects", "Reconnections after a failure."),
                           ("stalls", "Times the stream stopped delivering and was reopened.")):
        lines += family(f"camera_stream_{key}_total", "counter", help_text, per_stream(key))
    lines += family("camera_samples_total", "counter", "Frames sent to the detector.",
                    one(sampling.get("samples")))
    lines += family("camera_samples_skipped_total", "counter",
                    "Frames replaced by a newer one before the detector took them.",
                    one(sampling.get("skipped")))
    lines += family("camera_decision_latency_seconds", "gauge",
                    "Capture to trigger decision over the recent samples, by quantile.",
                    [({**ids, "quantile": q}, ms / 1000) for q, ms in
                     (("0.5", sampling.get("latencyP50Ms")), ("0.95", sampling.get("latencyP95Ms")))
                     if ms is not None])
    lines += family("camera_decode_keyframes_only", "gauge",
                    "1 while depot idle mode decodes keyframes only.",
                    one(int(sampling.get("decodeMode") == "keyframes")))
    lines += family("camera_decode_mode_changes_total", "counter",
                    "Switches between full and keyframes-only decoding.",
                    one(sampling.get("decodeModeChanges")))
    lines += family("camera_gop_seconds", "gauge", "Measured keyframe interval.",
                    one(sampling.get("gopS")))
    lines += family("camera_detector_up", "gauge", "1 while the detector answers.",
                    one(int(detector.get("status") == "up")))
    lines += family("camera_detector_failures_total", "counter", "Failed detector requests.",
                    one(detector.get("failures")))
    lines += family("camera_events_total", "counter", "Graffiti events started.",
                    one(recording.get("events")))
    lines += family("camera_event_active", "gauge", "1 while an event is under way.",
                    one(int(bool(recording.get("activeEvent")))))
    for key, name, help_text in (
            ("clipsWritten", "camera_clips_written_total", "Clips written to the outbox."),
            ("writeFailures", "camera_clip_write_failures_total", "Failed clip writes."),
            ("clipsDropped", "camera_clips_dropped_total", "Clips given up on (reported)."),
            ("recoveredClips", "camera_clips_recovered_total",
             "Clips recovered from a crash or power cut at start.")):
        lines += family(name, "counter", help_text, one(recording.get(key)))
    lines += family("camera_pending_clips", "gauge", "Clips waiting to be written.",
                    one(recording.get("pendingClips")))
    lines += family("camera_ring_bytes", "gauge", "Encoded video held for pre-roll.",
                    one(recording.get("ring", {}).get("bytes")))
    return "\n".join(lines) + "\n"


class MetricsService(ModuleService[CameraSettings]):
    """Serves the camera's metrics. A port that cannot be had is logged and reported, and the
    camera goes on: recording matters more than being scraped."""

    def __init__(self, runtime: ModuleRuntime[CameraSettings],
                 status: Callable[[], Status]) -> None:
        self._runtime = runtime
        self._status = status
        self._endpoint: MetricsEndpoint | None = None
        self._state: dict[str, Any] = {"status": "off"}

    def start(self) -> None:
        cfg = self._runtime.settings.metrics
        if not cfg.enabled:
            return
        try:
            self._endpoint = MetricsEndpoint(cfg.host, cfg.port, self._render)
        except OSError as exc:
            error = f"cannot listen on {cfg.host}:{cfg.port}: {exc.strerror or exc}"
            event(log, logging.ERROR, "metrics.unavailable", error=error,
                  action="the camera goes on without /metrics")
            self._state = {"status": "error", "lastError": error}
            return
        self._endpoint.start()
        self._state = {"status": "serving", "port": self._endpoint.port}
        event(log, logging.INFO, "metrics.serving", host=cfg.host, port=self._endpoint.port)

    def stop(self) -> None:
        if self._endpoint is not None:
            self._endpoint.stop()

    def status(self) -> Mapping[str, Any]:
        return {"metrics": self._state}

    def _render(self) -> str:
        identity = self._runtime.settings.identity
        return render(self._status(), train=identity.train_id, camera=identity.camera_id)
