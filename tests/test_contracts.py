"""The message contracts: one model per type, one naming style, bodies that read back."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from contracts import messages
from contracts.detection import Detection
from contracts.messages import MESSAGE_TYPES, Message, UnknownMessage, read_message
from contracts.outputs import MODULE_OUTPUTS

NOW = datetime(2026, 12, 1, 10, 0, 0, 123456, tzinfo=UTC)
TYPE_STYLE = re.compile(r"^[a-z]+\.[a-z_]+$")


def _all_message_classes() -> set[type[Message]]:
    found: set[type[Message]] = set()
    pending = list(Message.__subclasses__())
    while pending:
        cls = pending.pop()
        pending += cls.__subclasses__()
        if "TYPE" in vars(cls):
            found.add(cls)
    return found


def test_every_message_model_is_registered_once_with_one_naming_style() -> None:
    assert set(MESSAGE_TYPES.values()) == _all_message_classes()
    for msg_type, cls in MESSAGE_TYPES.items():
        assert TYPE_STYLE.match(msg_type), msg_type
        assert msg_type == cls.TYPE
        assert any(cls.OUTPUT in outputs for outputs in MODULE_OUTPUTS.values()), cls


def _example(cls: type[Message]) -> dict[str, Any]:
    """A valid value for every required field, from its annotation."""
    values: dict[str, Any] = {}
    for name, info in cls.model_fields.items():
        if not info.is_required():
            continue
        text = str(info.annotation)
        if "datetime" in text or "Aware" in text:
            values[name] = NOW
        elif info.annotation is bool:
            values[name] = True
        elif info.annotation is int:
            values[name] = 1
        elif info.annotation is float:
            values[name] = 0.5
        elif name == "detections":
            values[name] = [Detection("graffiti", 0, 0.9, (0.1, 0.2, 0.3, 0.4))]
        elif name == "blobs":
            values[name] = [messages.UploadedBlob(name="a/b.mp4", bytes=3,
                                                  content_type="video/mp4")]
        elif text == "dict[str, int]":
            values[name] = {"clip.mp4": 3}
        elif text.startswith("dict"):
            values[name] = {"name": "graffiti", "version": "1.1.0"}
        elif text.startswith("list"):
            values[name] = ["x"]
        else:
            values[name] = f"{name}-1"
    return values


@pytest.mark.parametrize("msg_type", sorted(MESSAGE_TYPES))
def test_body_is_camel_case_versioned_and_reads_back(msg_type: str) -> None:
    cls = MESSAGE_TYPES[msg_type]
    message = cls(**_example(cls))
    body = message.body()
    assert body["schemaVersion"] == 1
    assert all("_" not in key for key in body), body
    again = read_message(msg_type, body)
    assert type(again) is cls and again.body() == body


def test_times_are_iso_with_milliseconds_and_offset() -> None:
    message = messages.EventStarted(train_id="t", camera_id="c", event_id="e", start_utc=NOW,
                                    clip_from_utc=NOW)
    assert message.body()["startUtc"] == "2026-12-01T10:00:00.123+00:00"


def test_detections_keep_the_detection_contract_keys() -> None:
    cls = messages.DetectionsFound
    body = cls(**_example(cls)).body()
    assert body["detections"] == [{"label": "graffiti", "class_id": 0, "score": 0.9,
                                   "box": [0.1, 0.2, 0.3, 0.4]}]


def test_unknown_type_and_bad_body_are_refused() -> None:
    with pytest.raises(UnknownMessage, match="unknown message type 'clip_uploaded'"):
        read_message("clip_uploaded", {})
    with pytest.raises(ValidationError, match="eventId"):
        read_message("event.started", {"trainId": "t", "cameraId": "c"})


def test_a_newer_sender_s_extra_field_is_kept() -> None:
    body = messages.DiskLow(free_bytes=1, folder="/outbox").body() | {"newField": 7}
    assert read_message("disk.low", body).model_extra == {"newField": 7}


def test_detection_is_validated_where_it_is_made() -> None:
    with pytest.raises(ValidationError, match="less than or equal to 1"):
        Detection("graffiti", 0, 1.0134, (0, 0, 1, 1))
    with pytest.raises(ValidationError):
        Detection("graffiti", -1, 0.5, (0, 0, 1, 1))


def test_facts_about_one_clip_or_event_have_a_stable_message_id() -> None:
    uploaded = messages.ClipUploaded(**_example(messages.ClipUploaded))
    again = read_message(uploaded.TYPE, uploaded.body())
    assert uploaded.message_id() == again.message_id() == "clip.uploaded/event_id-1/1"
    ended = messages.EventEnded(**_example(messages.EventEnded))
    assert ended.message_id() == "event.ended/event_id-1"
    assert messages.DiskLow(free_bytes=1, folder="/o").message_id() is None
