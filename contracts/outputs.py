"""Every module output the code sends, in one place.

The deployment manifest routes each of these to ``$upstream``, and a test checks that routes
and this table agree, so a renamed output cannot silently stop reaching IoT Hub.
"""

from __future__ import annotations

from enum import StrEnum


class Output(StrEnum):
    """Module outputs (``send_message_to_output`` names)."""

    DETECTIONS = "detections"  # detector: detections above the twin thresholds, rate-limited
    EVENTS = "events"  # camera: event started, clip written, event ended
    CLIPS = "clips"  # uploader: a clip confirmed in blob storage
    MODEL = "model"  # detector: a model version became active (or failed)
    ALERTS = "alerts"  # any module: something an operator must look at (quarantine, eviction)


MODULE_OUTPUTS: dict[str, frozenset[Output]] = {
    "camera": frozenset({Output.EVENTS, Output.ALERTS}),
    "detector": frozenset({Output.DETECTIONS, Output.MODEL, Output.ALERTS}),
    "uploader": frozenset({Output.CLIPS, Output.ALERTS}),
}
