"""Reading back what the camera wrote: clip files, sidecars, where the marker shows, and
which frame of the source video a clip's frame is (for the true time of a looped camera)."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from camera_module.packets import EncodedPacket, StreamInfo
from contracts.clip import ClipSidecar
from tests.support.rtsp import marker_visible


@dataclass
class ClipFacts:
    codec: str
    container: str
    frames: int
    duration_s: float
    fps: float
    keyframe_first: bool
    marker_from_s: float | None  # clip time of the first frame showing the marker
    marker_to_s: float | None  # ... and of the last


def read_clip(path: Path) -> ClipFacts:
    """Decode every frame (a clip that does not decode to the end fails here)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        times: list[float] = []
        marked: list[float] = []
        first_key = None
        for frame in container.decode(stream):
            t = float(frame.time)
            if first_key is None:
                first_key = frame.key_frame
            times.append(t)
            if marker_visible(frame.to_ndarray(format="rgb24")):
                marked.append(t)
        fps = float(stream.average_rate or 0)
        return ClipFacts(stream.codec_context.name, container.format.name, len(times),
                         times[-1] + 1 / fps if times else 0.0, fps, bool(first_key),
                         marked[0] if marked else None, marked[-1] if marked else None)


def sidecars(outbox: Path) -> list[ClipSidecar]:
    """Every published sidecar, validated against the contract, oldest part first."""
    found = [ClipSidecar.model_validate_json(p.read_text()) for p in outbox.glob("*.json")]
    return sorted(found, key=lambda s: (s.start_utc, s.part))


def iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0


def demux(path: Path, *, start_t: float = 100.0) -> list[EncodedPacket]:
    """A file's packets as the source would hand them on (t = start_t + stream time)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        info = StreamInfo(1, stream.codec_context.name, stream.width, stream.height,
                          float(stream.average_rate), Fraction(stream.time_base),
                          bytes(stream.codec_context.extradata or b""))
        packets = []
        for packet in container.demux(stream):
            if packet.dts is None:
                continue
            t = start_t + float(packet.dts * stream.time_base)
            packets.append(EncodedPacket(bytes(packet), packet.pts, packet.dts,
                                         packet.is_keyframe, t, t, info))
        return packets


def small_frames(path: Path) -> list[np.ndarray]:
    """Every frame of a video, decoded, as a small grey image (for :func:`frame_index`)."""
    with av.open(str(path)) as container:
        return [frame.reformat(width=160, height=90, format="gray").to_ndarray()
                .astype(np.int16) for frame in container.decode(video=0)]


def frame_index(frame: np.ndarray, source: list[np.ndarray]) -> list[int]:
    """Indices of the source frames ``frame`` is (a copied clip decodes to the very same
    pixels; the marker videos repeat their texture, so there can be several)."""
    errors = [float(np.mean(np.abs(frame - s))) for s in source]
    best = min(errors)
    return [i for i, e in enumerate(errors) if e <= best + 0.5]
