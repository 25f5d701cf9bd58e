"""What one clip is made of while it is on its way: packets, observations, the best frame.

Kept apart from the :class:`~camera_module.recorder.Recorder` that moves recordings along and
from :mod:`camera_module.sidecar` that describes a finished one, so both read the same data
without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import av

from camera_module.packets import EncodedPacket
from contracts.clip import ModelInfo, clip_stem
from contracts.detection import Detection

#: What made a clip: a confirmed event, or the ``record`` direct method.
ClipKind = Literal["detection", "on_demand"]


@dataclass
class Observation:
    """What the detector said about one sample; ``frame`` only while it may be a thumbnail."""

    t: float
    detections: list[Detection]
    best: float
    frame: av.VideoFrame | None = None

    def without_frame(self) -> Observation:
        """The same observation without its pixels, to keep for longer than a thumbnail
        choice (a decoded frame is a few hundred kilobytes)."""
        return Observation(self.t, self.detections, self.best)


@dataclass
class Recording:
    """One part of one event (or an on-demand clip) on its way to the outbox."""

    event_id: str
    part: int
    trigger_t: float
    kind: ClipKind
    thresholds: dict[str, object]
    packets: list[EncodedPacket]
    observations: list[Observation] = field(default_factory=list)
    best: Observation | None = None
    model: ModelInfo | None = None
    end_t: float | None = None
    attempts: int = 0

    @property
    def stem(self) -> str:
        return clip_stem(self.event_id, self.part)

    def add(self, obs: Observation) -> None:
        self.observations.append(obs.without_frame())
        if obs.frame is not None and (self.best is None or obs.best > self.best.best):
            self.best = obs
