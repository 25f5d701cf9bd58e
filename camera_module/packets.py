"""Encoded video as the camera sent it, and the ring buffer that holds the pre-roll.

Clips are copied from these packets without re-encoding, so the buffer keeps the bytes, the
timestamps and enough about the stream (:class:`StreamInfo`) to mux them later, even after
the connection they came from is gone.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from fractions import Fraction


@dataclass(frozen=True)
class StreamInfo:
    """What a muxer needs to know about one connection's video stream.

    A reconnect makes a new ``StreamInfo`` (``session`` counts up): timestamps restart and
    parameters may change, so the clip writer treats each session as its own run."""

    session: int
    codec: str
    width: int
    height: int
    fps: float
    time_base: Fraction
    extradata: bytes


class Anchor:
    """The module time at which one stretch of a stream's time is zero, as well as it is
    known so far: :class:`~camera_module.source.StreamSource` lowers it while the first
    packets of a session (read during probing, or a server's burst at connect) give way to
    ones that arrive on time. Packets hold it by reference, so the ones that came early in a
    session get the better estimate too, in the ring, in a clip and in the journal."""

    __slots__ = ("value",)

    def __init__(self, value: float) -> None:
        self.value = value


@dataclass(frozen=True, slots=True)
class EncodedPacket:
    """One access unit (all slices of one frame).

    :attr:`t` is the module's monotonic clock at which the frame was captured: ``anchor +
    offset`` (``offset`` is the stream time), or ``offset`` itself with no anchor (a file,
    a test). ``arrived`` is when it actually arrived (for latency figures)."""

    data: bytes
    pts: int
    dts: int
    keyframe: bool
    offset: float
    arrived: float
    info: StreamInfo
    anchor: Anchor | None = None

    @property
    def t(self) -> float:
        return self.offset if self.anchor is None else self.anchor.value + self.offset

    @property
    def duration_hint(self) -> int:
        """One frame in stream time-base units, for the last packet of a run."""
        return max(1, round(1 / (self.info.fps * self.info.time_base)))


class PacketRing:
    """Encoded packets covering at least ``keep_s`` seconds, always starting at a keyframe.

    The buffer trims whole GOPs from the front, and only while the *next* keyframe is still
    old enough, so a pre-roll that asks for ``keep_s`` seconds always finds a keyframe at or
    before that point. Memory is the camera's bitrate times ``keep_s`` plus one GOP.
    """

    def __init__(self, keep_s: float) -> None:
        self._keep_s = keep_s
        self._packets: deque[EncodedPacket] = deque()
        self._lock = threading.Lock()
        self._bytes = 0

    @property
    def keep_s(self) -> float:
        return self._keep_s

    @keep_s.setter
    def keep_s(self, value: float) -> None:
        with self._lock:
            self._keep_s = value
            self._trim()

    def append(self, packet: EncodedPacket) -> None:
        with self._lock:
            if not self._packets and not packet.keyframe:
                return  # useless until a keyframe: nothing before it can be decoded
            self._packets.append(packet)
            self._bytes += len(packet.data)
            self._trim()

    def since(self, t: float) -> list[EncodedPacket]:
        """Packets from the last keyframe at or before ``t`` (or the oldest one) to now.

        Never from a stream session that ended before ``t``: after a camera hang the last
        keyframe before ``t`` may be the one before the hang, and a clip starting there would
        claim the whole outage as its own. It starts at the next session's first keyframe."""
        with self._lock:
            packets = list(self._packets)
        start = 0
        for index, packet in enumerate(packets):
            if packet.keyframe and packet.t <= t:
                start = index
            elif packet.t > t:
                break
        while start < len(packets):
            info = packets[start].info
            end = next((i for i in range(start, len(packets)) if packets[i].info is not info),
                       None)
            if end is None or packets[end - 1].t >= t:
                break
            start = next((i for i in range(end, len(packets)) if packets[i].keyframe),
                         len(packets))
        return packets[start:]

    def newest_t(self) -> float:
        """Time of the newest packet (minus infinity while empty)."""
        with self._lock:
            return self._packets[-1].t if self._packets else float("-inf")

    def stats(self) -> dict[str, float | int]:
        with self._lock:
            span = self._packets[-1].t - self._packets[0].t if self._packets else 0.0
            return {"packets": len(self._packets), "bytes": self._bytes,
                    "span_s": round(span, 2)}

    def _trim(self) -> None:
        if not self._packets:
            return
        horizon = self._packets[-1].t - self._keep_s
        while True:
            second_key = next((i for i, p in enumerate(self._packets) if i and p.keyframe), None)
            if second_key is None or self._packets[second_key].t > horizon:
                return
            for _ in range(second_key):
                self._bytes -= len(self._packets.popleft().data)
