"""Depot idle mode: decode keyframes only while nothing happens in front of a camera.

Decoding every frame to look at five a second is most of a camera's CPU, and it goes on for
hours while a train stands in a siding. While a camera has no event and no detection at or
above the wake threshold for ``sampling.idle_quiet_s``, its detect stream decodes keyframes
only (FFmpeg's ``skip_frame`` NONKEY), which is one sample per keyframe. A detection at or
above the wake threshold asks for full decoding, which starts at the next keyframe: a
predicted frame cannot be decoded without the frames before it. Recording is not touched,
because the packet ring is filled before decoding.

A long GOP makes the idle camera slow to notice, so the interval between keyframes is
measured, and when it is longer than ``sampling.idle_max_gop_s`` the camera stays in full
decoding, with the reason reported. A camera starts in full decoding (reason ``starting``)
and goes idle once it has been quiet for the quiet period, with the GOP known.

Modes change only at keyframes, in the source's thread; :meth:`DecodeMode.stir` (the detect
thread) only notes the time, so the two share no lock.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import Literal

from config.camera import SamplingSettings
from infra.logs import event

log = logging.getLogger(__name__)

Mode = Literal["full", "keyframes"]
# The GOP bound is checked against the longest of the last few intervals: an encoder's
# scene-cut keyframes make some intervals short, and one short one must not hide a long GOP.
GOP_WINDOW = 5
# Two keyframes further apart than this are a gap in the stream (a reconnect, a stalled
# camera), not a GOP.
GOP_GAP_S = 60.0


class DecodeMode:
    """Whether the detect stream decodes every frame or keyframes only, and why."""

    def __init__(self, settings: Callable[[], SamplingSettings], camera_id: Callable[[], str],
                 start: float) -> None:
        self._settings = settings
        self._camera_id = camera_id
        self.mode: Mode = "full"
        self.reason = "starting"
        self.changes = 0
        self._stirred = False
        self._wake = False
        self._last_activity = start
        self._last_keyframe: float | None = None
        self._gops: deque[float] = deque(maxlen=GOP_WINDOW)

    @property
    def gop_s(self) -> float | None:
        """The latest measured interval between keyframes, in seconds."""
        return self._gops[-1] if self._gops else None

    def new_session(self) -> None:
        """The stream reconnected: the next keyframe starts a new interval."""
        self._last_keyframe = None

    def stir(self, t: float) -> None:
        """Something worth full decoding was seen at ``t``: a detection at or above the wake
        threshold, or an event under way. Full decoding starts at the next keyframe, however
        soon, and lasts until the camera has been quiet for the quiet period."""
        self._stirred = True
        self._wake = self.mode == "keyframes"
        self._last_activity = max(self._last_activity, t)

    def at_keyframe(self, t: float, stream_s: float) -> str:
        """Called for every keyframe of the detect stream before it is decoded, with its time
        (the module's clock, as the samples have) and its stream timestamp (exact, for the
        GOP): the decoder's ``skip_frame`` from this keyframe on."""
        last, self._last_keyframe = self._last_keyframe, stream_s
        if last is not None and 0 < stream_s - last <= GOP_GAP_S:
            self._gops.append(stream_s - last)
        mode, self.reason = self._wanted(t)
        self._wake = False
        if mode != self.mode:
            self.mode = mode
            self.changes += 1
            event(log, logging.INFO, "camera.decode_mode", camera_id=self._camera_id(),
                  mode=mode, reason=self.reason, gop_s=self.gop_s, changes=self.changes)
        return "NONKEY" if mode == "keyframes" else "DEFAULT"

    def _wanted(self, t: float) -> tuple[Mode, str]:
        cfg = self._settings()
        if cfg.idle_mode == "off":
            return "full", "idle_mode off"
        if not self._gops:
            return "full", "GOP not measured yet"
        longest = max(self._gops)
        if longest > cfg.idle_max_gop_s:
            return "full", (f"GOP {longest:.1f} s is longer than idle_max_gop_s "
                            f"({cfg.idle_max_gop_s:g} s)")
        if self._wake or t - self._last_activity < cfg.idle_quiet_s:
            return "full", "activity" if self._stirred else "starting"
        return "keyframes", f"quiet for {cfg.idle_quiet_s:g} s"

    def report(self) -> dict[str, object]:
        """The reported-property fields (part of ``sampling``)."""
        return {"decodeMode": self.mode, "decodeReason": self.reason,
                "gopS": None if self.gop_s is None else round(self.gop_s, 2),
                "decodeModeChanges": self.changes}
