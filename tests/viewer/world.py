"""Clips as the camera would have made them, from the sample world: real H.264 video, sidecars
whose per-frame detections are the scene's ground-truth boxes, JPEG thumbnails; uploaded with
the uploader's own blob names and metadata."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
from azure.storage.blob import BlobServiceClient, ContentSettings

from contracts.blob_layout import (
    API_VERSION,
    CONTAINER,
    CONTENT_TYPES,
    ClipId,
    blob_metadata,
    blob_name,
)
from contracts.clip import SIDECAR_SUFFIX, THUMBNAIL_SUFFIX, VIDEO_SUFFIX, ClipSidecar
from samples.world.encode import write_mp4
from samples.world.video import generate

FPS, WIDTH, HEIGHT, SECONDS = 25, 640, 360, 4.0
SAMPLE_EVERY = 5  # the camera scores every 5th frame: 5 samples a second


@dataclass(frozen=True)
class Spec:
    event_id: str
    train: str
    camera: str
    start: datetime
    score: float
    video: str  # which rendered video
    interrupted: bool = False  # recovered after a crash, with a stream gap (schema 2)
    # Where the camera is (schema 3); clips without one are written as schema 2 sidecars,
    # as an older camera did.
    carriage: str | None = None
    position: str | None = None


def at(day: int, hour: int, minute: int, second: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, second, tzinfo=UTC)


SPECS = [
    Spec("ev-a1", "train-0001", "cam-01", at(20, 8, 15), 0.91, "passing", carriage="4021",
         position="left"),
    Spec("ev-a2", "train-0001", "cam-01", at(21, 9, 0), 0.62, "passing", carriage="4021",
         position="left"),
    Spec("ev-a3", "train-0001", "cam-01", at(21, 10, 30), 0.88, "spraying", carriage="4021",
         position="left"),
    Spec("ev-a4", "train-0001", "cam-02", at(21, 10, 31), 0.55, "spraying", carriage="4022",
         position="right"),
    Spec("ev-b1", "train-0002", "cam-01", at(19, 23, 59, 59), 0.97, "passing"),
    Spec("ev-b2", "train-0002", "cam-01", at(21, 7, 0), 0.71, "spraying"),
    Spec("ev-b3", "train-0002", "cam-03", at(22, 6, 0), 0.80, "passing", carriage="7001",
         position="cab"),
    Spec("ev-c1", "train-0003", "cam-01", at(18, 12, 0), 0.66, "spraying"),
    Spec("ev-c2", "train-0003", "cam-02", at(17, 5, 0), 0.64, "passing", interrupted=True),
]
REASON = "module restarted"
GAP = {"at_s": 1.6, "missing_s": 2.4}


@dataclass
class Rendered:
    path: Path
    boxes: list[list[list[float]]]  # per frame, normalised boxes
    thumbnail: bytes


def render(kind: str, seed: int, folder: Path) -> Rendered:
    frames, truth = generate(kind, seed, WIDTH, HEIGHT, FPS, seconds=SECONDS)
    kept: dict[int, np.ndarray] = {}

    def keep() -> Iterator[np.ndarray]:
        for index, image in enumerate(frames):
            if truth.frames[index] and not kept:
                kept[index] = image
            yield image

    path = folder / f"{kind}.mp4"
    write_mp4(path, keep(), WIDTH, HEIGHT, FPS)
    boxes = [[o.normalised(WIDTH, HEIGHT) for o in objs] for objs in truth.frames]
    image = next(iter(kept.values()))
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(cv2.resize(image, (320, 180)),
                                                 cv2.COLOR_RGB2BGR))
    assert ok
    return Rendered(path, boxes, jpeg.tobytes())


def sidecar(spec: Spec, video: Rendered) -> ClipSidecar:
    data = video.path.read_bytes()
    detections = [
        {"t_s": round(i / FPS, 3),
         "detections": [{"label": "graffiti", "class_id": 0,
                         "score": round(spec.score - 0.05 * k, 4), "box": box}
                        for k, box in enumerate(video.boxes[i])]}
        for i in range(0, len(video.boxes), SAMPLE_EVERY)
    ]
    return ClipSidecar(
        schema_version=3 if spec.carriage else 2,
        event_id=spec.event_id, device_id=f"edge-{spec.train}", train_id=spec.train,
        camera_id=spec.camera, carriage=spec.carriage, position=spec.position,
        start_utc=spec.start,
        end_utc=spec.start + timedelta(seconds=SECONDS),
        trigger_utc=spec.start + timedelta(seconds=1),
        video={"codec": "h264", "width": WIDTH, "height": HEIGHT, "fps": FPS,
               "duration_s": SECONDS, "bytes": len(data),
               "sha256": hashlib.sha256(data).hexdigest()},
        model={"name": "graffiti-demo", "version": "1.0.0"},
        thresholds={"min_score": 0.5}, detections=detections, max_score=spec.score,
        labels=["graffiti"], interrupted=spec.interrupted,
        interruption={"reason": REASON, "last_recorded_utc": spec.start + timedelta(
            seconds=SECONDS)} if spec.interrupted else None,
        gaps=[GAP] if spec.interrupted else [])


def make_clips(folder: Path) -> list[tuple[ClipSidecar, Rendered]]:
    videos = {kind: render(kind, seed, folder) for kind, seed in (("passing", 3),
                                                                   ("spraying", 4))}
    return [(sidecar(spec, videos[spec.video]), videos[spec.video]) for spec in SPECS]


def upload(connection_string: str, clips: list[tuple[ClipSidecar, Rendered]],
           container: str = CONTAINER) -> list[str]:
    """Upload like the uploader (video, thumbnail, sidecar last); returns the clip ids."""
    service = BlobServiceClient.from_connection_string(connection_string,
                                                       api_version=API_VERSION)
    client = service.get_container_client(container)
    if not client.exists():
        client.create_container()
    for car, video in clips:
        meta = blob_metadata(car)
        bodies = {VIDEO_SUFFIX: video.path.read_bytes(), THUMBNAIL_SUFFIX: video.thumbnail,
                  SIDECAR_SUFFIX: car.model_dump_json(indent=2).encode()}
        for suffix, body in bodies.items():
            client.upload_blob(blob_name(car, suffix), body, overwrite=True, metadata=meta,
                               content_settings=ContentSettings(
                                   content_type=CONTENT_TYPES[suffix]))
    # A clip still uploading: video only, no sidecar yet; the viewer must not list it.
    client.upload_blob("train-0001/cam-01/2026/11/21/235900_ev-partial.mp4", b"\0" * 100,
                       overwrite=True)
    # Something that is not a clip at all.
    client.upload_blob("README.txt", b"not a clip", overwrite=True)
    service.close()
    return [str(ClipId.of(car)) for car, _ in clips]
