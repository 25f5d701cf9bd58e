"""Clips into the outbox: MP4 video, thumbnail, sidecar, each complete before it is visible.

The video is the camera's own H.264 copied packet for packet (no decode, no quality loss, a
few milliseconds of CPU); only a camera that sends something else is encoded with libx264.
Either way the file is MP4 with ``+faststart`` (the index first, so a browser starts playing
before the download ends) and timestamps rebased to zero.

Packets from an RTSP camera are Annex B with the SPS/PPS often only in the SDP; packets from
an MP4 file are length-prefixed with the parameters in ``avcC``. Both are turned into Annex B
with SPS/PPS in front of every keyframe, which the MP4 muxer turns back into a proper
``avcC`` and length-prefixed samples. A reconnect in the middle of a clip starts a new run of
timestamps; runs are laid end to end, and :attr:`VideoResult.runs` says where each one sits in
the video and in time, so the sidecar can map detections onto the video's own timeline and
name the gaps.

Every file is written under a hidden temporary name beside its final one (the uploader skips
names starting with a dot), fsync'ed, and renamed: video, then thumbnail, then the sidecar
last, so a sidecar in the outbox always means a complete clip; then the folder is fsync'ed so
the renames survive a power cut.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from camera_module.packets import EncodedPacket, StreamInfo
from contracts.clip import SIDECAR_SUFFIX, THUMBNAIL_SUFFIX, VIDEO_SUFFIX, ClipSidecar
from infra.durable import fsync_dir, fsync_path, temp_beside, write_synced

START_CODE = b"\x00\x00\x00\x01"
NAL_SPS = 7


@dataclass(frozen=True)
class Run:
    """One stream session inside a clip: where it starts in the video, and its frames' times
    on the module's clock."""

    video_s: float  # seconds from the start of the video
    first_t: float
    last_t: float
    frame_s: float  # one frame

    def video_time(self, t: float) -> float:
        return self.video_s + min(max(0.0, t - self.first_t), self.last_t - self.first_t)


@dataclass(frozen=True)
class VideoResult:
    """What the muxer produced, for the sidecar's ``video`` facts."""

    codec: str
    width: int
    height: int
    fps: float
    duration_s: float
    first_t: float  # monotonic time of the clip's first frame
    last_t: float  # ... and of its last frame
    copied: bool  # True: packets copied; False: encoded with libx264
    runs: tuple[Run, ...] = ()

    def video_time(self, t: float) -> float:
        """Where module time ``t`` shows in the video: inside a run, at its offset from the
        run's start; inside a gap between two runs, at the jump."""
        for run, after in zip(self.runs, (*self.runs[1:], None), strict=True):
            if after is None or t < after.first_t:
                if after is not None and t > run.last_t + run.frame_s:
                    return after.video_s
                return run.video_time(t)
        return max(0.0, t - self.first_t)


class ClipError(Exception):
    """The packets cannot make a clip (no keyframe, nothing left)."""


def _avcc_parameter_sets(extradata: bytes) -> tuple[bytes, int]:
    """Annex B SPS+PPS and the NAL length size from an ``avcC`` record."""
    length_size = (extradata[4] & 0x03) + 1
    out, pos = bytearray(), 6
    count = extradata[5] & 0x1F
    for _ in range(count):
        size = int.from_bytes(extradata[pos:pos + 2], "big")
        out += START_CODE + extradata[pos + 2:pos + 2 + size]
        pos += 2 + size
    count = extradata[pos]
    pos += 1
    for _ in range(count):
        size = int.from_bytes(extradata[pos:pos + 2], "big")
        out += START_CODE + extradata[pos + 2:pos + 2 + size]
        pos += 2 + size
    return bytes(out), length_size


def _length_prefixed_to_annexb(data: bytes, length_size: int) -> bytes:
    out, pos = bytearray(), 0
    while pos + length_size <= len(data):
        size = int.from_bytes(data[pos:pos + length_size], "big")
        pos += length_size
        out += START_CODE + data[pos:pos + size]
        pos += size
    return bytes(out)


def _has_sps(annexb: bytes) -> bool:
    pos = annexb.find(b"\x00\x00\x01")
    while pos != -1:
        if pos + 3 < len(annexb) and annexb[pos + 3] & 0x1F == NAL_SPS:
            return True
        pos = annexb.find(b"\x00\x00\x01", pos + 3)
    return False


class AnnexB:
    """Turns one session's packets into Annex B with parameter sets before each keyframe."""

    def __init__(self, info: StreamInfo) -> None:
        extradata = info.extradata
        if extradata[:1] == b"\x01":
            self.parameter_sets, self.length_size = _avcc_parameter_sets(extradata)
        else:
            self.parameter_sets, self.length_size = extradata, 0

    def __call__(self, packet: EncodedPacket) -> bytes:
        data = packet.data
        if self.length_size:
            data = _length_prefixed_to_annexb(data, self.length_size)
        if packet.keyframe and self.parameter_sets and not _has_sps(data):
            data = self.parameter_sets + data
        return data


def _runs(packets: Sequence[EncodedPacket]) -> list[list[EncodedPacket]]:
    """Split by session and drop what precedes each session's first keyframe."""
    runs: list[list[EncodedPacket]] = []
    for packet in packets:
        if runs and runs[-1][0].info is packet.info:
            runs[-1].append(packet)
        elif packet.keyframe:
            runs.append([packet])
    return runs


def write_video(path: Path, packets: Sequence[EncodedPacket]) -> VideoResult:
    """Mux (or, for a non-H.264 source, encode) ``packets`` into an MP4 at ``path``."""
    runs = _runs(packets)
    if not runs:
        raise ClipError("no keyframe among the packets")
    info = runs[0][0].info
    if info.codec == "h264":
        return _remux(path, runs, info)
    return _encode(path, runs, info)


def _remux(path: Path, runs: list[list[EncodedPacket]], info: StreamInfo) -> VideoResult:
    out_tb = info.time_base
    offset = 0
    last_end = 0
    spans: list[Run] = []
    with av.open(str(path), mode="w", format="mp4",
                 options={"movflags": "+faststart"}) as container:
        stream = container.add_mux_stream("h264", rate=Fraction(info.fps).limit_denominator(1001),
                                          width=info.width, height=info.height)
        stream.time_base = out_tb
        for run in runs:
            convert = AnnexB(run[0].info)
            run_tb = run[0].info.time_base
            base = run[0].dts
            spans.append(_span(float(offset * out_tb), run))
            for packet in run:
                out = av.Packet(convert(packet))
                out.dts = offset + _rescale(packet.dts - base, run_tb, out_tb)
                out.pts = offset + _rescale(packet.pts - base, run_tb, out_tb)
                out.time_base = out_tb
                out.is_keyframe = packet.keyframe
                out.stream = stream
                container.mux(out)
                last_end = max(last_end, out.pts + _rescale(packet.duration_hint, run_tb, out_tb))
            offset = last_end
    return VideoResult("h264", info.width, info.height, info.fps, float(last_end * out_tb),
                       runs[0][0].t, runs[-1][-1].t, copied=True, runs=tuple(spans))


def _span(video_s: float, run: list[EncodedPacket]) -> Run:
    return Run(video_s, run[0].t, run[-1].t, 1.0 / run[0].info.fps)


def _rescale(value: int, src: Fraction, dst: Fraction) -> int:
    return value if src == dst else round(value * src / dst)


def _encode(path: Path, runs: list[list[EncodedPacket]], info: StreamInfo) -> VideoResult:
    """libx264 for sources that are not H.264 (MJPEG, H.265, ...): browsers need H.264."""
    fps = Fraction(info.fps).limit_denominator(1001)
    count = 0
    spans: list[Run] = []
    with av.open(str(path), mode="w", format="mp4",
                 options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = info.width, info.height, "yuv420p"
        stream.options = {"preset": "veryfast", "profile": "main", "crf": "23"}
        for run in runs:
            decoder = _decoder(run[0].info)
            spans.append(_span(float(count / fps), run))
            for packet in run:
                for frame in decoder.decode(_raw(packet)):
                    image = frame.reformat(width=info.width, height=info.height,
                                           format="yuv420p")
                    image.pts, image.time_base = count, 1 / fps
                    container.mux(stream.encode(image))
                    count += 1
        container.mux(stream.encode(None))
    return VideoResult("h264", info.width, info.height, float(fps), float(count / fps),
                       runs[0][0].t, runs[-1][-1].t, copied=False, runs=tuple(spans))


def _decoder(info: StreamInfo) -> av.CodecContext:
    decoder = av.CodecContext.create(info.codec, "r")
    if info.extradata:
        decoder.extradata = info.extradata
    return decoder


def _raw(packet: EncodedPacket) -> av.Packet:
    raw = av.Packet(packet.data)
    raw.pts, raw.dts, raw.time_base = packet.pts, packet.dts, packet.info.time_base
    return raw


def frame_at(packets: Sequence[EncodedPacket], t: float) -> av.VideoFrame | None:
    """The frame showing at time ``t``, decoded from the keyframe before it: the thumbnail of
    a recording recovered from disk, whose decoded frames died with the process before."""
    runs = _runs(packets)
    run = next((r for r in reversed(runs) if r[0].t <= t), runs[0] if runs else None)
    if run is None:
        return None
    start = max((i for i, p in enumerate(run) if p.keyframe and p.t <= t), default=0)
    decoder = _decoder(run[0].info)
    frames: list[av.VideoFrame] = []
    for index in range(start, len(run)):
        if run[index].t > t and index > start:
            break
        frames.extend(decoder.decode(_raw(run[index])))
    frames.extend(decoder.decode(None))
    return frames[-1] if frames else None


def draw_thumbnail(image: np.ndarray, boxes: Sequence[tuple[str, float, Sequence[float]]],
                   max_width: int = 640) -> bytes:
    """JPEG of an RGB frame with ``(label, score, box)`` drawn, scaled to ``max_width``."""
    height, width = image.shape[:2]
    if width > max_width:
        height, width = round(height * max_width / width), max_width
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    canvas = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    for label, score, (x1, y1, x2, y2) in boxes:
        p1 = (round(x1 * width), round(y1 * height))
        p2 = (round(x2 * width), round(y2 * height))
        cv2.rectangle(canvas, p1, p2, (0, 255, 255), 2)
        cv2.putText(canvas, f"{label} {score:.2f}", (p1[0], max(12, p1[1] - 4)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 255, 255), 1, cv2.LINE_AA)
    ok, jpeg = cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        raise ClipError("thumbnail JPEG encoding failed")
    return jpeg.tobytes()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def publish(outbox: Path, stem: str, video_tmp: Path, thumbnail: bytes | None,
            sidecar: ClipSidecar) -> dict[str, int]:
    """Rename a finished clip into the outbox: video, thumbnail, sidecar last.

    Returns ``{file name: size}``. On any error every temporary file is removed and the error
    raised (a full disk is the caller's to report)."""
    names = {"video": stem + VIDEO_SUFFIX, "thumb": stem + THUMBNAIL_SUFFIX,
             "sidecar": stem + SIDECAR_SUFFIX}
    thumb_tmp = temp_beside(outbox / names["thumb"])
    side_tmp = temp_beside(outbox / names["sidecar"])
    try:
        fsync_path(video_tmp)
        if thumbnail is not None:
            write_synced(thumb_tmp, thumbnail)
        write_synced(side_tmp, sidecar.model_dump_json(indent=2).encode())
        os.replace(video_tmp, outbox / names["video"])
        if thumbnail is not None:
            os.replace(thumb_tmp, outbox / names["thumb"])
        os.replace(side_tmp, outbox / names["sidecar"])
    except OSError:
        # No sidecar, so no clip: take back whatever was already renamed as well.
        for leftover in (video_tmp, thumb_tmp, side_tmp, outbox / names["video"],
                         outbox / names["thumb"]):
            leftover.unlink(missing_ok=True)
        raise
    fsync_dir(outbox)
    written = [names["video"], names["sidecar"]] + ([names["thumb"]] if thumbnail else [])
    return {name: (outbox / name).stat().st_size for name in written}

