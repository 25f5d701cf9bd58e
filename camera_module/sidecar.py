"""The sidecar of a finished clip: what its recording knew, measured against the video made.

The video, not the recording's plan, decides the clip's times: a pre-roll starts at a keyframe
and a camera that went away ends a clip early. So the sidecar's times are the first and last
frame written, and its detections are the observations between them, at the video's own
time (what a player's clock shows): a clip that spans a reconnect has the two sessions laid
end to end, so a detection after the jump is placed by its offset in its own session, and
each jump is listed in ``gaps`` with the wall-clock time that is missing there.
"""

from __future__ import annotations

from pathlib import Path

from camera_module.clipwriter import VideoResult, sha256_file
from camera_module.recording import Recording
from camera_module.sampling import WallClock
from config.camera import IdentitySettings
from contracts.clip import (
    ClipSidecar,
    FrameDetections,
    Interruption,
    ModelInfo,
    StreamGap,
    VideoFacts,
)

# A clip recorded before the detector ever answered (an on-demand clip with the detector down)
# still needs a model in its sidecar; this one says so instead of guessing.
UNKNOWN_MODEL = ModelInfo(name="unknown", version="unknown")


def camera_ids(names: IdentitySettings) -> dict[str, str | None]:
    """The train, camera, carriage and position fields every camera message and sidecar
    carry, as the twin names them now."""
    return {"train_id": names.train_id, "camera_id": names.camera_id,
            "carriage": names.carriage, "position": names.position}


def build_sidecar(rec: Recording, video: VideoResult, video_file: Path, *, thumbnail: bool,
                  device_id: str, names: IdentitySettings, wall: WallClock) -> ClipSidecar:
    """The sidecar of ``rec`` written as ``video`` to ``video_file`` (measured here, once the
    file is complete, so size and digest are those of the bytes that will be uploaded)."""
    frames = clip_detections(rec, video)
    scores = [d.score for f in frames for d in f.detections]
    return ClipSidecar(
        event_id=rec.event_id, part=rec.part, device_id=device_id,
        **camera_ids(names),
        start_utc=wall.utc(video.first_t), end_utc=wall.utc(video.last_t),
        trigger_utc=wall.utc(rec.trigger_t),
        video=video_facts(video, video_file),
        thumbnail=thumbnail,
        model=rec.model or UNKNOWN_MODEL,
        thresholds=rec.thresholds, detections=frames,
        max_score=max(scores, default=0.0),
        labels=sorted({d.label for f in frames for d in f.detections}),
        trigger=rec.kind, copied=video.copied,
        interrupted=rec.interrupted is not None,
        interruption=None if rec.interrupted is None else Interruption(
            reason=rec.interrupted, last_recorded_utc=wall.utc(video.last_t)),
        gaps=stream_gaps(video),
    )


def video_facts(video: VideoResult, video_file: Path) -> VideoFacts:
    return VideoFacts(codec=video.codec, width=video.width, height=video.height, fps=video.fps,
                      duration_s=round(video.duration_s, 3), bytes=video_file.stat().st_size,
                      sha256=sha256_file(video_file))


def clip_detections(rec: Recording, video: VideoResult) -> list[FrameDetections]:
    """The recording's non-empty observations inside the video, at clip-relative times."""
    return [FrameDetections(t_s=round(video.video_time(obs.t), 3),
                            detections=list(obs.detections))
            for obs in rec.observations
            if video.first_t <= obs.t <= video.last_t and obs.detections]


def stream_gaps(video: VideoResult) -> list[StreamGap]:
    """Each jump between two stream sessions: where it is in the video, how long the camera
    was away (wall-clock seconds between the last frame before and the first after)."""
    return [StreamGap(at_s=round(after.video_s, 3),
                      missing_s=round(max(0.0, after.first_t - before.last_t - before.frame_s),
                                      3))
            for before, after in zip(video.runs, video.runs[1:], strict=False)]
