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

EVENT_ID = "Event id; the clip of its first part has it as file stem."
PART = "Clip part of the event, 1 for the first (long events are split)."


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

    def message_id(self) -> str | None:
        """A stable id for a message that states a fact about one thing (an event, a clip),
        sent as the IoT Hub message id, so a consumer can drop a repeat after a crash and
        retry; None for messages that are merely observations."""
        return None


class CameraMessage(Message):
    """A message about one camera or what it recorded."""

    train_id: str = Field(description="Train (or depot) the camera belongs to.")
    camera_id: str = Field(description="Camera id, as in the clip's blob name.")
    carriage: str | None = Field(None, description="Carriage the camera is on, so a cleaning "
                                 "crew knows which car to go to (null when not set).")
    position: str | None = Field(None, description="Where on the carriage the camera looks, "
                                 "e.g. left (null when not set).")


class EventMessage(CameraMessage):
    """A fact about one event: its message id is stable, so a repeat can be dropped."""

    event_id: str = Field(description=EVENT_ID)

    def message_id(self) -> str:
        return f"{self.TYPE}/{self.event_id}"


class ClipMessage(EventMessage):
    """A fact about one clip (one part of an event)."""

    part: int = Field(ge=1, description=PART)

    def message_id(self) -> str:
        return f"{self.TYPE}/{self.event_id}/{self.part}"


class RecordedClip(ClipMessage):
    """A clip that exists as files: written by the camera, or uploaded from the outbox."""

    stem: str = Field(description="File stem of the clip in the outbox.")
    start_utc: UtcTime = Field(description="Time of the clip's first frame.")
    max_score: float = Field(description="Best detection score in the clip.")


# -- camera: output "events" -------------------------------------------------------------------


class EventStarted(EventMessage):
    """An event was confirmed; its clip starts at ``clipFromUtc`` (pre-roll)."""

    OUTPUT = Output.EVENTS
    TYPE = "event.started"

    start_utc: UtcTime = Field(description="When the trigger confirmed the event.")
    clip_from_utc: UtcTime = Field(description="Start of the clip, pre-roll included.")
    max_score: float | None = Field(None, description="Best score of the confirming frame.")
    labels: list[str] = Field(default_factory=list, description="Labels in that frame.")


class EventEnded(EventMessage):
    """An event ended (post-roll ran out, the module is stopping, or a part limit)."""

    OUTPUT = Output.EVENTS
    TYPE = "event.ended"

    end_utc: UtcTime = Field(description="When the event ended.")
    last_confirmed_utc: UtcTime | None = Field(
        None, description="Last frame that still confirmed the event.")
    parts: int = Field(ge=1, description="How many clips (parts) the event has.")
    reason: str | None = Field(None, description="Why it ended, when not by post-roll "
                               "(e.g. stopping).")


class ClipWritten(RecordedClip):
    """One clip (part of an event) is complete in the outbox."""

    OUTPUT = Output.EVENTS
    TYPE = "clip.written"

    files: dict[str, int] = Field(description="File name to size in bytes.")
    duration_s: float = Field(description="Length of the video in seconds.")
    end_utc: UtcTime = Field(description="Time of the clip's last frame.")
    trigger: str = Field(description="What made the clip: detection or on_demand.")


# -- camera: output "alerts" -------------------------------------------------------------------


class ClipFailed(ClipMessage):
    """A clip could not be made from its packets (not a disk error): it is lost."""

    OUTPUT = Output.ALERTS
    TYPE = "clip.failed"

    reason: str = Field(description="What went wrong.")


class ClipWriteFailed(ClipMessage):
    """Writing a clip failed on the disk; it is kept for a retry."""

    OUTPUT = Output.ALERTS
    TYPE = "clip.write_failed"

    error: str = Field(description="The disk error.")
    disk_full: bool = Field(description="The disk (or quota) is full.")
    waiting: int = Field(description="Clips now waiting for the disk.")
    retry_in_s: float = Field(description="Seconds until the next try.")
    dropped: str | None = Field(None, description="Stem of a clip given up to make room for "
                                "this one, if any.")


# -- uploader: output "clips" ------------------------------------------------------------------


class UploadedBlob(BaseModel):
    """One blob of an uploaded clip."""

    model_config = ConfigDict(frozen=True, alias_generator=to_camel, populate_by_name=True)

    name: str = Field(description="Blob name in the container.")
    bytes: int = Field(description="Size in bytes.")
    content_type: str = Field(description="The blob's Content-Type.")


class ClipUploaded(RecordedClip):
    """A clip's blobs are confirmed in blob storage and its local files are gone."""

    OUTPUT = Output.CLIPS
    TYPE = "clip.uploaded"

    labels: list[str] = Field(default_factory=list, description="Labels detected in the clip.")
    model_version: str = Field(description="Version of the model that found them.")
    container: str = Field(description="Blob container the clip is in.")
    bytes: int = Field(description="Total size of the clip's blobs.")
    blobs: list[UploadedBlob] = Field(description="Video, thumbnail and sidecar blobs.")


# -- uploader: output "alerts" -----------------------------------------------------------------


class OutboxAlert(Message):
    """Something about files in the outbox that a person should look at."""

    OUTPUT = Output.ALERTS

    stem: str = Field(description="File stem of the clip.")


class ClipQuarantined(OutboxAlert):
    """A clip that cannot be uploaded as it is was moved aside for a person to look at."""

    TYPE = "clip.quarantined"

    event_id: str | None = Field(None, description="Event id, when the sidecar was readable.")
    reason: str = Field(description="Why it cannot be uploaded.")
    folder: str = Field(description="Where its files are now.")


class ClipEvicted(OutboxAlert):
    """The outbox was over its quota and this clip was deleted without being uploaded."""

    TYPE = "clip.evicted"

    event_id: str | None = Field(None, description="Event id, when the sidecar was readable.")
    bytes: int = Field(description="Bytes freed.")
    max_score: float | None = Field(None, description="Best score of the evicted clip.")
    policy: str = Field(description="The outbox.eviction policy that chose it.")
    outbox_bytes: int = Field(description="Outbox size before the eviction.")
    quota_bytes: int = Field(description="The outbox quota.")


class ClipIncomplete(OutboxAlert):
    """Files of a clip without its sidecar have lain in the outbox for a while."""

    TYPE = "clip.incomplete"

    files: list[str] = Field(description="File names present.")
    bytes: int = Field(description="Their size together.")
    age_s: float = Field(description="Seconds since they last changed.")


class DiskLow(Message):
    """The outbox's disk has less free space than ``outbox.min_free_mb``."""

    OUTPUT = Output.ALERTS
    TYPE = "disk.low"

    free_bytes: int = Field(description="Free bytes on the outbox's disk.")
    folder: str = Field(description="The outbox folder.")


# -- detector ----------------------------------------------------------------------------------


class DetectionsFound(Message):
    """Detections above the twin's thresholds in one frame (at most one per camera per
    ``events.rate_limit_s``)."""

    OUTPUT = Output.DETECTIONS
    TYPE = "detection.found"

    camera_id: str = Field(description="Camera the frame came from (unknown if not given).")
    frame_time: str = Field(description="The frame's time as the caller gave it (or now).")
    model: dict[str, str] = Field(description="name and version of the model.")
    max_score: float = Field(description="Best score among the detections.")
    detections: list[Detection] = Field(description="label, class_id, score, box (x1, y1, "
                                        "x2, y2 in 0..1).")


class ModelActivated(Message):
    """A model version became the one that serves."""

    OUTPUT = Output.MODEL
    TYPE = "model.activated"

    name: str = Field(description="Model name.")
    version: str = Field(description="Model version now serving.")
    format: str | None = Field(None, description="Model format (adapter).")
    status: str = Field("active", description="Always active for this message.")
    activated_at: str = Field(description="UTC time of the swap (ISO 8601).")
    source: str = Field(description="Where it came from: download, repository, ...")
    providers: list[str] | None = Field(None, description="ONNX Runtime execution providers "
                                        "in use.")


# -- any module --------------------------------------------------------------------------------


class WorkerFailed(Message):
    """A worker thread of the module raised an unexpected exception (a bug, or a state the
    code does not handle). It is restarted with backoff; one that keeps failing makes the
    module exit so that IoT Edge restarts it."""

    OUTPUT = Output.ALERTS
    TYPE = "worker.failed"

    worker: str = Field(description="Name of the worker thread.")
    error: str = Field(description="The exception, type and message (at most 200 chars).")
    failures: int = Field(description="Failures of this worker since the module started.")
    restarting: bool = Field(description="False when the worker was given up.")


MESSAGE_TYPES: dict[str, type[Message]] = {
    cls.TYPE: cls
    for cls in (EventStarted, EventEnded, ClipWritten, ClipFailed, ClipWriteFailed,
                ClipUploaded, ClipQuarantined, ClipEvicted, ClipIncomplete, DiskLow,
                DetectionsFound, ModelActivated, WorkerFailed)
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
