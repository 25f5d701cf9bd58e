"""Where a clip goes in the container and what travels with it (the blob layout contract).

``<train>/<camera>/<YYYY>/<MM>/<DD>/<HHMMSS>_<stem>.<ext>`` from the clip's UTC start, so an
operator browsing the container finds a train's clips by day and in time order. What a reviewer
filters on goes into blob metadata, because Blob Storage on IoT Edge has no blob index tags.
"""

from __future__ import annotations

from datetime import UTC
from urllib.parse import quote

from contracts.clip import SIDECAR_SUFFIX, THUMBNAIL_SUFFIX, VIDEO_SUFFIX, ClipSidecar

CONTENT_TYPES = {
    VIDEO_SUFFIX: "video/mp4",
    THUMBNAIL_SUFFIX: "image/jpeg",
    SIDECAR_SUFFIX: "application/json",
}
# Characters kept as they are in metadata values; everything else is percent-encoded, because
# metadata travels in HTTP headers, which must be printable ASCII.
_METADATA_SAFE = " !#$&'()*+,-./:;<=>?@[]^_`{|}~"


def blob_prefix(sidecar: ClipSidecar) -> str:
    """Blob name of the clip without its extension."""
    start = sidecar.start_utc.astimezone(UTC)
    return (f"{sidecar.train_id}/{sidecar.camera_id}/{start:%Y/%m/%d}/"
            f"{start:%H%M%S}_{sidecar.stem}")


def blob_name(sidecar: ClipSidecar, suffix: str) -> str:
    return blob_prefix(sidecar) + suffix


def metadata_value(text: str) -> str:
    """A metadata value: printable ASCII, anything else percent-encoded (UTF-8)."""
    return quote(text, safe=_METADATA_SAFE)


def blob_metadata(sidecar: ClipSidecar) -> dict[str, str]:
    """Metadata set on every blob of the clip, so each blob is findable on its own."""
    values = {
        "event_id": sidecar.event_id,
        "part": str(sidecar.part),
        "device": sidecar.device_id,
        "train": sidecar.train_id,
        "camera": sidecar.camera_id,
        "start_utc": sidecar.start_utc.astimezone(UTC).isoformat(),
        "end_utc": sidecar.end_utc.astimezone(UTC).isoformat(),
        "duration_s": f"{sidecar.video.duration_s:.3f}",
        "max_score": f"{sidecar.max_score:.4f}",
        "labels": ",".join(sidecar.labels),
        "model_name": sidecar.model.name,
        "model_version": sidecar.model.version,
        "schema_version": str(sidecar.schema_version),
    }
    return {key: metadata_value(value) for key, value in values.items()}
