"""The clip contract: what the camera module writes to the outbox and the uploader reads.

A clip is up to three files sharing a stem: ``<stem>.mp4`` (the video), ``<stem>.jpg`` (a
thumbnail with boxes drawn, optional) and ``<stem>.json`` (the sidecar, this model). The
camera writes the video and the thumbnail first and renames the sidecar into place last, so a
sidecar in the outbox means a complete clip. The stem is the event id for the first part of
an event; a long event split into parts shares its event id and the later parts get a
``_p<N>`` suffix (:func:`clip_stem`).

Bump :data:`SCHEMA_VERSION` for an incompatible change; readers refuse versions they do not
know rather than guess. Unknown extra keys are kept, so a newer camera that only adds
information does not get its clips quarantined by an older uploader.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from contracts.detection import Detection
from contracts.identifiers import Identifier

SCHEMA_VERSION = 3
VIDEO_SUFFIX = ".mp4"
THUMBNAIL_SUFFIX = ".jpg"
SIDECAR_SUFFIX = ".json"
# Safe as a file name, a blob name segment and a metadata value on every platform.
EVENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"
SHA256_PATTERN = r"^[0-9a-f]{64}$"


class _Part(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class VideoFacts(_Part):
    """Facts about the video file, measured by the camera when it closed the file."""

    codec: str = Field(description="Codec name as FFmpeg calls it, e.g. h264.")
    width: int = Field(gt=0, description="Frame width in pixels.")
    height: int = Field(gt=0, description="Frame height in pixels.")
    fps: float = Field(gt=0, description="Nominal frame rate, frames per second.")
    duration_s: float = Field(ge=0, description="Duration in seconds.")
    bytes: int = Field(ge=0, description="Size of the video file in bytes.")
    sha256: str = Field(pattern=SHA256_PATTERN, description="Hex SHA-256 of the video file.")


class ModelInfo(_Part):
    """The detection model that produced the detections."""

    name: str
    version: str


class FrameDetections(_Part):
    """The detections of one sampled frame; ``t_s`` is seconds from the start of the clip."""

    t_s: float = Field(ge=0)
    detections: list[Detection] = Field(default_factory=list)


class StreamGap(_Part):
    """Time the camera's stream was away inside a clip: the video jumps there."""

    at_s: float = Field(ge=0, description="Clip time (seconds from its start) of the jump.")
    missing_s: float = Field(ge=0, description="Wall-clock seconds with no video.")


class Interruption(_Part):
    """Why a recording ended without the camera finishing it (a crash, a power cut)."""

    reason: str = Field(description="e.g. 'module restarted' (recovered at start-up).")
    last_recorded_utc: AwareDatetime = Field(description="Time of the last frame on disk.")


class ClipSidecar(_Part):
    """The sidecar ``<stem>.json``: everything known about one clip besides its pixels.

    Version 2 added ``interrupted``, ``interruption`` and ``gaps``; version 3 added
    ``carriage`` and ``position``. Older sidecars (which have none of them) are still read."""

    schema_version: Literal[1, 2, 3] = SCHEMA_VERSION
    event_id: str = Field(pattern=EVENT_ID_PATTERN)
    part: int = Field(1, ge=1, description="1 for the first (or only) part of an event.")
    device_id: str
    train_id: str = Field(pattern=EVENT_ID_PATTERN)
    camera_id: str = Field(pattern=EVENT_ID_PATTERN)
    carriage: Identifier | None = Field(None, description="Carriage the camera is on, when "
                                        "known (schema 3).")
    position: Identifier | None = Field(None, description="Where on the carriage it looks, "
                                        "e.g. left (schema 3).")
    start_utc: AwareDatetime = Field(description="Time of the clip's first frame.")
    end_utc: AwareDatetime = Field(description="Time of the clip's last frame.")
    trigger_utc: AwareDatetime = Field(description="When the event was confirmed.")
    video: VideoFacts
    thumbnail: bool = Field(True, description="Whether <stem>.jpg belongs to the clip.")
    model: ModelInfo
    thresholds: dict[str, Any] = Field(default_factory=dict,
                                       description="The trigger settings in force.")
    detections: list[FrameDetections] = Field(default_factory=list)
    max_score: float = Field(ge=0, le=1)
    labels: list[str] = Field(default_factory=list)
    interrupted: bool = Field(False, description="The recording was cut short (crash, power "
                              "cut) and recovered; see interruption.")
    interruption: Interruption | None = None
    gaps: list[StreamGap] = Field(default_factory=list,
                                  description="Stream outages inside the clip, in clip time.")

    @model_validator(mode="after")
    def _ordered(self) -> ClipSidecar:
        if self.end_utc < self.start_utc:
            raise ValueError("end_utc is before start_utc")
        return self

    @property
    def stem(self) -> str:
        return clip_stem(self.event_id, self.part)


def clip_stem(event_id: str, part: int = 1) -> str:
    """File stem of one part of an event: ``<event_id>`` or ``<event_id>_p<part>``."""
    return event_id if part == 1 else f"{event_id}_p{part}"

