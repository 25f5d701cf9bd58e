"""Every message the modules send to their outputs, one model each (IoT Hub sees these).

A message has an output (where the deployment routes it), a type (the ``type`` application
property, for route queries and consumers), a schema version, and a JSON body with camelCase
keys. Types are named one way: ``<subject>.<what happened>``, lower case, the same as the log
event for the same happening (``event.started``, ``clip.uploaded``, ``model.activated``).

Senders build a model and hand it to ``ModuleRuntime.send``; readers (the narrator, the
sightings score, the pipeline, the benchmarks, consumers' tests) turn a body back into its
model with :func:`read_message`. Raise a model's ``schema_version`` default when a field
changes meaning or goes; adding an optional field needs no bump (readers keep unknown keys).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, PlainSerializer
from pydantic.alias_generators import to_camel

from contracts.detection import Detection
from contracts.outputs import Output


def _iso_ms(value: datetime) -> str:
    return value.isoformat(timespec="milliseconds")


#: A UTC time on the wire: ISO 8601 with milliseconds and offset.
UtcTime = Annotated[AwareDatetime, PlainSerializer(_iso_ms, return_type=str)]


class Message(BaseModel):
    """Fields every message carries; ``device_id`` and ``module_id`` are stamped by the
    runtime when it sends."""

    model_config = ConfigDict(frozen=True, alias_generator=to_camel, populate_by_name=True,
                              extra="allow")

    OUTPUT: ClassVar[Output]
    TYPE: ClassVar[str]

    schema_version: int = Field(1, description="Version of this message's body.")
    device_id: str | None = Field(None, description="IoT Edge device that sent it.")
    module_id: str | None = Field(None, description="Module that sent it.")

    def body(self) -> dict[str, Any]:
        """The JSON body as it goes on the wire."""
        return self.model_dump(mode="json", by_alias=True)


class CameraMessage(Message):
    """A message about one camera's stream."""

    train_id: str = Field(description="Train (or depot) the camera belongs to.")
    camera_id: str = Field(description="Camera id, as in the clip's blob name.")


# -- camera: output "events" -------------------------------------------------------------------


class EventStarted(CameraMessage):
    """An event was confirmed; its clip starts at ``clipFromUtc`` (pre-roll)."""

    OUTPUT = Output.EVENTS
    TYPE = "event.started"

    event_id: str
    start_utc: UtcTime = Field(description="When the trigger confirmed the event.")
    clip_from_utc: UtcTime = Field(description="Start of the clip, pre-roll included.")
    max_score: float | None = Field(None, description="Best score of the confirming frame.")
    labels: list[str] = Field(default_factory=list)


class EventEnded(CameraMessage):
    """An event ended (post-roll ran out, the module is stopping, or a part limit)."""

    OUTPUT = Output.EVENTS
    TYPE = "event.ended"

    event_id: str
    end_utc: UtcTime
    last_confirmed_utc: UtcTime | None = Field(
        None, description="Last frame that still confirmed the event.")
    parts: int = Field(ge=1, description="How many clips (parts) the event has.")
    reason: str | None = Field(None, description="Why it ended, when not by post-roll "
                               "(e.g. stopping).")


class ClipWritten(CameraMessage):
    """One clip (part of an event) is complete in the outbox."""

    OUTPUT = Output.EVENTS
    TYPE = "clip.written"

    event_id: str
    part: int = Field(ge=1)
    stem: str = Field(description="File stem in the outbox.")
    files: dict[str, int] = Field(description="File name to size in bytes.")
    duration_s: float
    start_utc: UtcTime
    end_utc: UtcTime
    max_score: float
    trigger: str = Field(description="What made the clip: event or on_demand.")


# -- camera: output "alerts" -------------------------------------------------------------------


class ClipFailed(CameraMessage):
    """A clip could not be made from its packets (not a disk error): it is lost."""

    OUTPUT = Output.ALERTS
    TYPE = "clip.failed"

    event_id: str
    part: int = Field(ge=1)
    reason: str


class ClipWriteFailed(CameraMessage):
    """Writing a clip failed on the disk; it is kept in memory for a retry."""

    OUTPUT = Output.ALERTS
    TYPE = "clip.write_failed"

    event_id: str
    part: int = Field(ge=1)
    error: str
    disk_full: bool = Field(description="The disk (or quota) is full.")
    waiting: int = Field(description="Clips now waiting for the disk.")
    retry_in_s: float
    dropped: str | None = Field(None, description="Stem of a clip given up to make room for "
                                "this one, if any.")


# -- uploader: output "clips" ------------------------------------------------------------------


class UploadedBlob(BaseModel):
    """One blob of an uploaded clip."""

    model_config = ConfigDict(frozen=True, alias_generator=to_camel, populate_by_name=True)

    name: str
    bytes: int
    content_type: str


class ClipUploaded(Message):
    """A clip's blobs are confirmed in blob storage and its local files are gone."""

    OUTPUT = Output.CLIPS
    TYPE = "clip.uploaded"

    event_id: str
    part: int = Field(ge=1)
    stem: str
    train_id: str
    camera_id: str
    start_utc: UtcTime
    max_score: float
    labels: list[str] = Field(default_factory=list)
    model_version: str
    container: str
    bytes: int = Field(description="Total size of the clip's blobs.")
    blobs: list[UploadedBlob]


# -- uploader: output "alerts" -----------------------------------------------------------------


class ClipQuarantined(Message):
    """A clip that cannot be uploaded as it is was moved aside for a person to look at."""

    OUTPUT = Output.ALERTS
    TYPE = "clip.quarantined"

    event_id: str | None = None
    stem: str
    reason: str
    folder: str


class ClipEvicted(Message):
    """The outbox was over its quota and this clip was deleted without being uploaded."""

    OUTPUT = Output.ALERTS
    TYPE = "clip.evicted"

    event_id: str | None = None
    stem: str
    bytes: int
    max_score: float | None = None
    policy: str
    outbox_bytes: int
    quota_bytes: int


class ClipIncomplete(Message):
    """Files of a clip without its sidecar have lain in the outbox for a while."""

    OUTPUT = Output.ALERTS
    TYPE = "clip.incomplete"

    stem: str
    files: list[str]
    bytes: int
    age_s: float


class DiskLow(Message):
    """The outbox's disk has less free space than ``outbox.min_free_mb``."""

    OUTPUT = Output.ALERTS
    TYPE = "disk.low"

    free_bytes: int
    folder: str


# -- detector ----------------------------------------------------------------------------------


class DetectionsFound(Message):
    """Detections above the twin's thresholds in one frame (at most one per camera per
    ``events.rate_limit_s``)."""

    OUTPUT = Output.DETECTIONS
    TYPE = "detection.found"

    camera_id: str
    frame_time: str = Field(description="The frame's time as the caller gave it (or now).")
    model: dict[str, str] = Field(description="name and version of the model.")
    max_score: float
    detections: list[Detection]


class ModelActivated(Message):
    """A model version became the one that serves."""

    OUTPUT = Output.MODEL
    TYPE = "model.activated"

    name: str
    version: str
    format: str | None = None
    status: str = "active"
    activated_at: str
    source: str = Field(description="Where it came from: download, repository, ...")
    providers: list[str] | None = None


MESSAGE_TYPES: dict[str, type[Message]] = {
    cls.TYPE: cls
    for cls in (EventStarted, EventEnded, ClipWritten, ClipFailed, ClipWriteFailed,
                ClipUploaded, ClipQuarantined, ClipEvicted, ClipIncomplete, DiskLow,
                DetectionsFound, ModelActivated)
}


class UnknownMessage(ValueError):
    """A message type this version of the contracts does not know."""


def read_message(msg_type: str, body: dict[str, Any]) -> Message:
    """The model for a received body (validated); :class:`UnknownMessage` for other types."""
    cls = MESSAGE_TYPES.get(msg_type)
    if cls is None:
        raise UnknownMessage(f"unknown message type {msg_type!r}; known: "
                             f"{', '.join(sorted(MESSAGE_TYPES))}")
    return cls.model_validate(body)
