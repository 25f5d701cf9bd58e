"""What one clip is made of while it is on its way: packets, observations, the best frame.

Kept apart from the :class:`~camera_module.recorder.Recorder` that moves recordings along and
from :mod:`camera_module.sidecar` that describes a finished one, so both read the same data
without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import av

from camera_module.packets import EncodedPacket
from camera_module.sampling import WallClock
from contracts.clip import ModelInfo, clip_stem
from contracts.detection import Detection

if TYPE_CHECKING:
    from camera_module.journal import JournalWriter

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
    """One part of one event (or an on-demand clip) on its way to the outbox.

    ``packets`` are the packets not (yet) in its journal: the pre-roll until the journal
    thread has written it, an on-demand clip's video, or what a full disk refused. Whoever
    holds the recording (the journal thread while it runs, then the clip writer) is the only
    one to touch ``packets`` and ``journal``."""

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
    folder: Path | None = None  # its folder under recordings/, once it has one
    journal: JournalWriter | None = None  # open while the recording is written to
    journaled_obs: int = 0  # observations already in the journal
    journaled_model: ModelInfo | None = None
    ended: bool = False  # the journal has its end line
    disk_alerted: bool = False
    wall: WallClock | None = None  # set for a recording recovered from an earlier run
    interrupted: str | None = None  # why it was cut short, for one recovered unfinished
    announced: bool = False  # its interruption was sent as event.ended
    crashes: int = 0  # times the clip writer raised on it unexpectedly

    @property
    def stem(self) -> str:
        return clip_stem(self.event_id, self.part)

    def add(self, obs: Observation) -> None:
        """Keep ``obs`` (without its pixels) and remember the one for the thumbnail: the
        best-scored with a frame; failing any, the best-scored without (a recovered
        recording has no frames: its thumbnail is decoded from the video)."""
        self.observations.append(obs.without_frame())
        best = self.best
        if best is None:
            self.best = obs
        elif obs.frame is not None:
            if best.frame is None or obs.best > best.best:
                self.best = obs
        elif best.frame is None and obs.best > best.best:
            self.best = obs
