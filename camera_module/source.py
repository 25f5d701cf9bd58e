"""The video source: an RTSP camera (or a video file) that is allowed to misbehave.

One thread per source opens the stream with PyAV (TCP transport, open and read timeouts, so a
hung camera cannot block for a minute), hands every access unit to the ring buffer and, for
the detect stream, decodes it and offers the frames to the sampler. When the stream fails,
hangs or stalls it reconnects with capped exponential backoff, counts what happened and says
online/offline through ``on_status``. Nothing here waits on the detector or the disk.

A frame's time is when the camera captured it, as well as the module can tell: stream time
anchored to the earliest arrival the stream allows (:class:`_SessionClock`), not to the first
packet PyAV hands over, which it read while probing the stream, a few hundred milliseconds
before.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction

import av

from camera_module.decode_mode import DecodeMode
from camera_module.packets import Anchor, EncodedPacket, StreamInfo
from config.camera import StreamSettings
from infra.backoff import Backoff
from infra.logs import event

log = logging.getLogger(__name__)

PacketSink = Callable[[EncodedPacket], None]
FrameSink = Callable[[av.VideoFrame, float, float], None]
StatusSink = Callable[[str, "SourceStats"], None]
#: Starts a named worker thread (``Workers.spawn`` in the module, a plain thread by default).
Spawn = Callable[[str, Callable[[], None]], threading.Thread]
# A live stream arriving later than its timestamps say by more than this (a lagging camera,
# a network gap) moves the anchor to the arrival time instead of letting the error grow.
REANCHOR_S = 1.0
# The anchor is the earliest arrival over this much recent time, so it follows a camera
# whose clock drifts against ours, and a late burst (network hiccup) heals once it is over.
ANCHOR_WINDOW_S = 10.0


def plain_thread(name: str, target: Callable[[], None]) -> threading.Thread:
    """A daemon thread, for a source or recorder used on its own (tests, benchmarks)."""
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return thread


class StreamStalled(Exception):
    """No frame for ``stall_timeout_s`` although the connection is up."""


class StreamEnded(Exception):
    """A video file (not looped) reached its end."""


@dataclass
class SourceStats:
    """Counters reported as the ``stream`` reported property and in logs."""

    status: str = "connecting"
    connects: int = 0
    reconnects: int = 0
    stalls: int = 0
    failures: int = 0
    packets: int = 0
    frames: int = 0
    last_error: str | None = None
    info: dict[str, str | int | float] = field(default_factory=dict)

    def report(self) -> dict[str, str | int | float | None]:
        return {"status": self.status, "connects": self.connects, "reconnects": self.reconnects,
                "stalls": self.stalls, "failures": self.failures, "packets": self.packets,
                "frames": self.frames, "lastError": self.last_error, **self.info}


def is_file(url: str) -> bool:
    return "://" not in url


class StreamSource:
    """Reads one URL in its own thread until stopped, reconnecting as needed."""

    def __init__(self, name: str, url: str, settings: Callable[[], StreamSettings], *,
                 on_packet: PacketSink | None = None, on_frame: FrameSink | None = None,
                 on_status: StatusSink | None = None,
                 decode_mode: DecodeMode | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 spawn: Spawn = plain_thread) -> None:
        """``decode_mode`` (detect stream only): decode keyframes only while it says so."""
        self.name = name
        self.url = url
        self._settings = settings
        self._on_packet = on_packet
        self._on_frame = on_frame
        self._on_status = on_status
        self._decode_mode = decode_mode
        self._clock = clock
        self._spawn = spawn
        self.stats = SourceStats()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._session = 0

    def start(self) -> None:
        self._thread = self._spawn(f"source-{self.name}", self._run)

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _status(self, status: str) -> None:
        if status == self.stats.status:
            return
        self.stats.status = status
        event(log, logging.INFO if status == "online" else logging.WARNING,
              f"stream.{status}", source=self.name, url=self.url,
              reconnects=self.stats.reconnects, stalls=self.stats.stalls,
              error=self.stats.last_error)
        if self._on_status is not None:
            self._on_status(self.name, self.stats)

    def _run(self) -> None:
        cfg = self._settings()
        backoff = Backoff(cfg.reconnect.initial_s, cfg.reconnect.max_s)
        while not self._stop.is_set():
            cfg = self._settings()
            backoff.initial, backoff.maximum = cfg.reconnect.initial_s, cfg.reconnect.max_s
            try:
                container = self._open(cfg)
            except (av.FFmpegError, OSError) as exc:
                self.stats.failures += 1
                self.stats.last_error = f"open: {exc}"
                self._status("offline")
                self._stop.wait(backoff.next())
                continue
            self.stats.connects += 1
            if self.stats.connects > 1:
                self.stats.reconnects += 1
            try:
                self._pump(container, cfg, backoff)
            except StreamEnded:
                self._status("ended")
                return
            except StreamStalled as exc:
                self.stats.stalls += 1
                self.stats.last_error = str(exc)
            except (av.FFmpegError, OSError, ValueError) as exc:
                self.stats.failures += 1
                if isinstance(exc, av.ExitError | TimeoutError):
                    self.stats.stalls += 1  # the read timeout fired: the camera hung
                self.stats.last_error = f"read: {exc}"
            finally:
                self._close(container)
            if not self._stop.is_set():
                self._status("offline")
                self._stop.wait(backoff.next())

    def _close(self, container: av.container.InputContainer) -> None:
        """Drain the decoder's frame threads before closing: closing a container whose
        frame-threaded decoder still holds frames deadlocks inside FFmpeg/PyAV."""
        stream = container.streams.video[0] if container.streams.video else None
        if self._on_frame is not None and stream is not None:
            # A broken stream may refuse to flush; closing is all that is left then.
            with contextlib.suppress(av.FFmpegError, ValueError):
                stream.codec_context.decode(None)
        container.close()

    def _open(self, cfg: StreamSettings) -> av.container.InputContainer:
        # PyAV's timeouts guard open and read; FFmpeg's own socket timeout (microseconds)
        # also bounds the RTSP TEARDOWN on close, which would otherwise wait forever on a
        # camera that stopped answering.
        options = {} if is_file(self.url) else {
            "rtsp_transport": cfg.transport, "timeout": str(int(cfg.read_timeout_s * 1e6))}
        return av.open(self.url, options=options,
                       timeout=(cfg.open_timeout_s, cfg.read_timeout_s))

    def _pump(self, container: av.container.InputContainer, cfg: StreamSettings,
              backoff: Backoff) -> None:
        """Read packets until the stream fails, stalls, ends or the source is stopped."""
        stream = container.streams.video[0]
        decoder = stream.codec_context if self._on_frame is not None else None
        if decoder is not None:
            decoder.thread_type = "AUTO"
        self._session += 1
        if self._decode_mode is not None:
            self._decode_mode.new_session()
        rate = stream.average_rate or stream.guessed_rate or 25
        info = StreamInfo(self._session, stream.codec_context.name, stream.width,
                          stream.height, float(rate), Fraction(stream.time_base),
                          bytes(stream.codec_context.extradata or b""))
        self.stats.info = {"codec": info.codec, "width": info.width, "height": info.height,
                           "fps": round(info.fps, 2)}
        pace = self._stop.wait if is_file(self.url) else None
        clock = _SessionClock(self._clock, info, pace=pace)
        packets = container.demux(stream)
        pending: list[av.Packet] = []
        pending_arrived = last_frame = self._clock()
        while not self._stop.is_set():
            read_from = self._clock()
            packet = next(packets, None)
            if not is_file(self.url) and self._clock() - read_from >= cfg.read_timeout_s:
                # PyAV's read timeout fired; FFmpeg then hands over the frame it was still
                # assembling, and only the read after that one fails: without this check a
                # frozen camera is noticed after twice the read timeout.
                raise StreamStalled(f"no data for {cfg.read_timeout_s} s (read timeout)")
            if packet is None or packet.dts is None and packet.size == 0:
                if not is_file(self.url):
                    raise StreamStalled("stream ended")
                if pending:
                    self._deliver(pending, clock, decoder, pending_arrived)
                    pending = []
                if not cfg.loop_file:
                    raise StreamEnded()
                clock.next_loop()
                container.seek(0, stream=stream)
                packets = container.demux(stream)
                continue
            if packet.dts is None or packet.pts is None:
                pending.append(packet)  # a slice without timestamps: part of the next frame
                pending_arrived = self._clock()
                continue
            if pending and pending[-1].dts is not None and pending[-1].dts != packet.dts:
                if self._deliver(pending, clock, decoder, pending_arrived):
                    last_frame = self._clock()
                    backoff.reset()
                    self._status("online")
                pending = []
            pending.append(packet)
            pending_arrived = self._clock()
            stall_s = self._settings().stall_timeout_s
            if self._clock() - last_frame > stall_s:
                raise StreamStalled(f"no frame for {stall_s} s")

    def _deliver(self, parts: list[av.Packet], clock: _SessionClock,
                 decoder: av.CodecContext | None, arrived: float) -> bool:
        """Join the slices of one frame into an access unit, hand it on, decode it if this is
        the detect stream; True when it produced (or, not decoding, is) a frame. ``arrived``
        is when its last slice was read (not when the next frame's first one showed that it
        was complete)."""
        last = parts[-1]
        data = bytes(last) if len(parts) == 1 else b"".join(bytes(p) for p in parts)
        unit = clock.unit(data, last.pts, last.dts, any(p.is_keyframe for p in parts), arrived)
        self.stats.packets += 1
        if self._on_packet is not None:
            self._on_packet(unit)
        if decoder is None or self._on_frame is None:
            return True
        if len(parts) == 1:
            raw = last  # the common case: decode the demuxed packet itself, no copy
        else:
            raw = av.Packet(data)
            raw.pts, raw.dts, raw.time_base = last.pts, last.dts, last.time_base
        if unit.keyframe and self._decode_mode is not None:
            # Applied per packet, also by FFmpeg's frame threads: from this keyframe on.
            decoder.skip_frame = self._decode_mode.at_keyframe(unit.t, unit.offset)
        frames = decoder.decode(raw)
        for frame in frames:
            self.stats.frames += 1
            self._on_frame(frame, clock.frame_time(frame.pts, unit), unit.arrived)
        return bool(frames)


class _SessionClock:
    """Maps one session's stream timestamps onto the module's monotonic clock.

    A file is paced to real time (it stands in for a camera) and gets a timestamp offset on
    every loop so time keeps increasing. A live frame cannot arrive before it was captured,
    so the mapping is the earliest the stream allows: the smallest ``arrival - stream time``
    over the last :data:`ANCHOR_WINDOW_S` seconds, kept in an :class:`Anchor` that every
    packet of the session refers to. The packets PyAV read while probing the stream and a
    server's burst at connect (both handed over late, at once) are then timed by the packets
    that arrive on time after them, not by their own late arrival; what remains is the
    camera's own latency to the first byte on the wire. A stream that arrives more than
    :data:`REANCHOR_S` later than that (its clock fell behind), or whose timestamps go back,
    gets a new anchor from then on. Frame times handed to the sampler never go backwards."""

    def __init__(self, clock: Callable[[], float], info: StreamInfo, *,
                 pace: Callable[[float], object] | None) -> None:
        self._clock = clock
        self._info = info
        self._pace = pace
        self._anchor: Anchor | None = None
        self._offset = 0
        self._last_dts: int | None = None
        self._last_frame_t = float("-inf")
        # (arrival, arrival - stream seconds), the second increasing: a sliding minimum.
        self._lags: deque[tuple[float, float]] = deque()

    def next_loop(self) -> None:
        one = max(1, round(1 / (self._info.fps * self._info.time_base)))
        self._offset = (self._last_dts or 0) + one

    def unit(self, data: bytes, pts: int, dts: int, keyframe: bool,
             arrived: float) -> EncodedPacket:
        pts, dts = pts + self._offset, dts + self._offset
        stream_s = float(dts * self._info.time_base)
        if self._pace is not None:
            anchor = self._paced(stream_s, arrived, self._pace)
            arrived = anchor.value + stream_s
        else:
            anchor = self._live(stream_s, dts, arrived)
        self._last_dts = dts
        return EncodedPacket(data, pts, dts, keyframe, stream_s, arrived, self._info, anchor)

    def _paced(self, stream_s: float, now: float, pace: Callable[[float], object]) -> Anchor:
        if self._anchor is None:
            self._anchor = Anchor(now - stream_s)
        t = self._anchor.value + stream_s
        if t > now:
            pace(t - now)
        return self._anchor

    def _live(self, stream_s: float, dts: int, arrived: float) -> Anchor:
        lag = arrived - stream_s
        went_back = self._last_dts is not None and dts < self._last_dts
        if self._anchor is None or went_back or lag - self._lags[0][1] > REANCHOR_S:
            self._lags.clear()
            self._anchor = Anchor(lag)
        while self._lags and self._lags[-1][1] >= lag:
            self._lags.pop()
        self._lags.append((arrived, lag))
        while self._lags[0][0] < arrived - ANCHOR_WINDOW_S:
            self._lags.popleft()
        self._anchor.value = self._lags[0][1]
        return self._anchor

    def frame_time(self, pts: int | None, unit: EncodedPacket) -> float:
        """Clock time of a decoded frame (its pts may differ from the unit's dts)."""
        t = unit.t
        if pts is not None:
            t += float((pts + self._offset - unit.dts) * self._info.time_base)
        self._last_frame_t = max(t, self._last_frame_t)
        return self._last_frame_t
