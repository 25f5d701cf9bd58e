"""The blob layout: where a clip's blobs go in the container and what travels with them.

The uploader writes it and the viewer (or anyone listing the container) reads it back, so both
take it from here. A blob is named ``<train>/<camera>/<YYYY>/<MM>/<DD>/<HHMMSS>_<stem><suffix>``
from the clip's UTC start, so an operator browsing the container finds a train's clips by day
and in time order; the name without its suffix is the clip id (:class:`ClipId`). What a
reviewer filters on goes into blob metadata (:func:`blob_metadata`), because Blob Storage on
IoT Edge has no blob index tags, and the list can then be built without reading a sidecar.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from enum import StrEnum
from urllib.parse import quote, unquote

from contracts.clip import SIDECAR_SUFFIX, THUMBNAIL_SUFFIX, VIDEO_SUFFIX, ClipSidecar
from contracts.identifiers import (
    EVENT_ID_MAX,
    NAME_MAX,
    BadIdentifier,
    check_identifier,
    is_identifier,
)

#: The newest Storage API version Blob Storage on IoT Edge accepts (the cloud accepts it too).
API_VERSION = "2019-07-07"
#: The container the uploader writes to and the viewer reads, unless the settings say otherwise.
CONTAINER = "graffiti-clips"

#: An operator's review mark, a blob beside the clip's (the viewer writes it).
REVIEW_SUFFIX = ".review.json"
# Longest first: a review's name also ends in the sidecar's suffix.
SUFFIXES = (REVIEW_SUFFIX, VIDEO_SUFFIX, THUMBNAIL_SUFFIX, SIDECAR_SUFFIX)
CONTENT_TYPES = {
    VIDEO_SUFFIX: "video/mp4",
    THUMBNAIL_SUFFIX: "image/jpeg",
    SIDECAR_SUFFIX: "application/json",
    REVIEW_SUFFIX: "application/json",
}
LABEL_SEPARATOR = ","


class Meta(StrEnum):
    """Blob metadata keys (lower case: the service folds metadata names)."""

    EVENT_ID = "event_id"
    PART = "part"
    DEVICE = "device"
    TRAIN = "train"
    CAMERA = "camera"
    # Where the camera is on the train (schema 3); absent when the camera's settings omit it.
    CARRIAGE = "carriage"
    POSITION = "position"
    START_UTC = "start_utc"
    END_UTC = "end_utc"
    DURATION_S = "duration_s"
    MAX_SCORE = "max_score"
    LABELS = "labels"
    MODEL_NAME = "model_name"
    MODEL_VERSION = "model_version"
    SCHEMA_VERSION = "schema_version"
    # "true" on the blobs of a recording recovered after a crash or a power cut (schema 2).
    INTERRUPTED = "interrupted"
    # On the review blob, so the list shows review states without reading any review.
    REVIEW_STATE = "review_state"
    UPDATED_UTC = "updated_utc"


# Characters kept as they are in metadata values; everything else is percent-encoded, because
# metadata travels in HTTP headers, which must be printable ASCII.
_METADATA_SAFE = " !#$&'()*+,-./:;<=>?@[]^_`{|}~"
# The layout's shape; each name segment is then checked by the one identifier rule
# (contracts.identifiers): train and camera ids as names, the stem as an event id.
CLIP_ID = re.compile(
    r"^(?P<train>[^/]+)/(?P<camera>[^/]+)/(?P<year>\d{4})/(?P<month>\d{2})/"
    r"(?P<day>\d{2})/(?P<time>\d{6})_(?P<stem>[^/]+)$", re.ASCII
)
# A stem is an event id plus at most a part suffix (``_p<N>``).
STEM_MAX = EVENT_ID_MAX + 8


class BadClipId(ValueError):
    """A clip id (or filter value) that is not in the clip layout."""


@dataclass(frozen=True, order=True)
class ClipId:
    """A clip's place in the layout; ``str()`` is the clip id, :meth:`blob` a blob name."""

    train: str
    camera: str
    day: str  # YYYY/MM/DD
    time: str  # HHMMSS
    stem: str

    @classmethod
    def of(cls, sidecar: ClipSidecar) -> ClipId:
        """Where the uploader puts the clip the sidecar describes; :class:`BadClipId` when
        the sidecar's ids are not identifiers, so that no name is ever written that the
        layout's reader would refuse."""
        start = sidecar.start_utc.astimezone(UTC)
        return cls(_segment(sidecar.train_id, "train id"),
                   _segment(sidecar.camera_id, "camera id"), f"{start:%Y/%m/%d}",
                   f"{start:%H%M%S}", _segment(sidecar.stem, "clip stem", STEM_MAX))

    def __str__(self) -> str:
        return f"{self.train}/{self.camera}/{self.day}/{self.time}_{self.stem}"

    def blob(self, suffix: str) -> str:
        return str(self) + suffix

    @property
    def iso_day(self) -> str:
        return self.day.replace("/", "-")


def blob_name(sidecar: ClipSidecar, suffix: str) -> str:
    """The name of one of the clip's blobs."""
    return ClipId.of(sidecar).blob(suffix)


def parse(text: str) -> ClipId:
    """The clip id in ``text``; :class:`BadClipId` for anything outside the layout, so a
    crafted id (``..``, absolute names, backslashes, percent-encoded tricks) can never become
    the name of a blob outside it. This is the one reader of clip ids and blob names (the
    viewer's paths, its listings, its cursors): each segment passes
    :func:`contracts.identifiers.check_identifier` before any use."""
    if ".." in text or "\\" in text or "%" in text or text.startswith("/"):
        raise BadClipId("clip ids never contain '..', '\\', '%' or a leading '/'")
    match = CLIP_ID.match(text)
    if match is None:
        raise BadClipId("not a clip id: expected <train>/<camera>/<YYYY>/<MM>/<DD>/"
                        "<HHMMSS>_<stem>")
    g = match.groupdict()
    return ClipId(_segment(g["train"], "train id"), _segment(g["camera"], "camera id"),
                  f"{g['year']}/{g['month']}/{g['day']}", g["time"],
                  _segment(g["stem"], "clip stem", STEM_MAX))


def _segment(value: str, what: str, max_length: int = NAME_MAX) -> str:
    """One name segment by the identifier rule, as a :class:`BadClipId` (answered 400)."""
    try:
        return check_identifier(value, what, max_length=max_length)
    except BadIdentifier as exc:
        raise BadClipId(str(exc)) from None


def split_blob(name: str) -> tuple[ClipId, str] | None:
    """(clip id, suffix) of a blob in the layout, or None for any other blob."""
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            try:
                return parse(name[: -len(suffix)]), suffix
            except BadClipId:
                return None
    return None


def is_segment(value: str) -> bool:
    """Whether a folder name of a listing is a train or camera id (see :func:`check_segment`)."""
    return ".." not in value and is_identifier(value)


def check_segment(value: str, what: str) -> str:
    """A train or camera id from a filter: one identifier, nothing that widens a prefix."""
    if ".." in value:
        raise BadClipId(f"{what} {value[:40]!r} is not a valid identifier: it holds '..'")
    return _segment(value, what)


def encode_metadata(values: Mapping[str, str]) -> dict[str, str]:
    """Metadata as it is stored: every value printable ASCII, anything else percent-encoded
    (UTF-8)."""
    return {str(key): quote(value, safe=_METADATA_SAFE) for key, value in values.items()}


def decode_metadata(stored: Mapping[str, str]) -> dict[str, str]:
    """Metadata as it was before :func:`encode_metadata`."""
    return {key: unquote(value) for key, value in stored.items()}


def blob_metadata(sidecar: ClipSidecar) -> dict[str, str]:
    """Metadata set on every blob of the clip, so each blob is findable on its own (and the
    viewer can list and filter by carriage without reading a sidecar)."""
    place = {key: value for key, value in ((Meta.CARRIAGE, sidecar.carriage),
                                           (Meta.POSITION, sidecar.position)) if value}
    return encode_metadata({
        Meta.EVENT_ID: sidecar.event_id,
        Meta.PART: str(sidecar.part),
        Meta.DEVICE: sidecar.device_id,
        Meta.TRAIN: sidecar.train_id,
        Meta.CAMERA: sidecar.camera_id,
        Meta.START_UTC: sidecar.start_utc.astimezone(UTC).isoformat(),
        Meta.END_UTC: sidecar.end_utc.astimezone(UTC).isoformat(),
        Meta.DURATION_S: f"{sidecar.video.duration_s:.3f}",
        Meta.MAX_SCORE: f"{sidecar.max_score:.4f}",
        Meta.LABELS: LABEL_SEPARATOR.join(sidecar.labels),
        Meta.MODEL_NAME: sidecar.model.name,
        Meta.MODEL_VERSION: sidecar.model.version,
        Meta.SCHEMA_VERSION: str(sidecar.schema_version),
        Meta.INTERRUPTED: "true" if sidecar.interrupted else "false",
        **place,
    })


def split_labels(value: str) -> list[str]:
    """The labels of a decoded ``labels`` metadata value."""
    return [label for label in value.split(LABEL_SEPARATOR) if label]
