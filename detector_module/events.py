"""Detection messages to the `detections` output, at most one per camera per interval.

A tagged carriage parked in view yields a detection on every frame; IoT Hub (and the
operator) needs to hear about it once per interval, not five times a second.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from config.detector import EventSettings
from contracts.detection import Detection
from contracts.messages import DetectionsFound, Message
from detector_module.metrics import Metrics
from infra.logs import event

log = logging.getLogger(__name__)

#: Camera id used for requests that do not name one.
UNKNOWN_CAMERA = "unknown"

Send = Callable[[Message], None]


class DetectionEvents:
    """Rate-limited sender; ``clock`` is injectable so tests need not sleep."""

    def __init__(self, send: Send, metrics: Metrics,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._send = send
        self._metrics = metrics
        self._clock = clock
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def offer(self, settings: EventSettings, camera_id: str | None, frame_time: str,
              model: dict[str, str], detections: Sequence[Detection]) -> bool:
        """Send when enabled, there is something to say and the camera's interval has passed."""
        if not settings.enabled or not detections:
            return False
        camera = camera_id or UNKNOWN_CAMERA
        now = self._clock()
        with self._lock:
            last = self._last.get(camera)
            if last is not None and now - last < settings.rate_limit_s:
                self._metrics.event("suppressed")
                return False
            self._last[camera] = now
        message = DetectionsFound(camera_id=camera, frame_time=frame_time, model=model,
                                  max_score=round(max(d.score for d in detections), 6),
                                  detections=list(detections))
        try:
            self._send(message)
        except Exception as exc:  # noqa: BLE001 - a failed message must not fail the request
            self._metrics.event("failed")
            event(log, logging.WARNING, "detections.send_failed", camera=camera, error=str(exc))
            return False
        self._metrics.event("sent")
        return True
