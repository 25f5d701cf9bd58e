"""A :class:`~camera_module.recording.Recording` and its folder on disk, both ways.

Forwards, while a recording runs: open its journal, append what is pending (packets, new
observations, a model change), end it. Backwards, at start-up: rebuild a recording from a
folder an earlier run left, with that run's own clock, and say why it was cut short when it
has no end line. The threads that do this (the recorder's journal thread, the clip writer)
and the policy (retries, alerts) live elsewhere; this is only the mapping, so both threads
write and read the same format.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from camera_module.journal import (
    JournalError,
    JournalWriter,
    boot_id,
    read_lines,
    read_packets,
)
from camera_module.packets import EncodedPacket, StreamInfo
from camera_module.recording import Observation, Recording
from camera_module.sampling import WallClock
from contracts.clip import ModelInfo
from contracts.detection import Detection

HEADER_SCHEMA = 1
REASON_RESTART = "the camera module stopped before the recording finished (killed or crashed)"
REASON_POWER = "the machine restarted before the recording finished (power cut or reboot)"


def header(rec: Recording, wall: WallClock) -> dict[str, Any]:
    """What the journal's first line says: enough to make the clip without the process."""
    mono, utc = wall.anchor
    return {"schema": HEADER_SCHEMA, "event_id": rec.event_id, "part": rec.part,
            "kind": rec.kind, "trigger_t": rec.trigger_t, "thresholds": rec.thresholds,
            "clock": {"mono": mono, "utc": utc.isoformat()}, "boot_id": boot_id(),
            "created_utc": datetime.now(UTC).isoformat()}


def flush(rec: Recording, recordings: Path, wall: WallClock) -> None:
    """Append everything of ``rec`` not yet in its journal; raises OSError (a full disk),
    leaving what was not written pending for the next try."""
    if rec.ended:
        return
    if rec.journal is None:
        folder = recordings / rec.stem
        rec.journal = JournalWriter(folder, header(rec, rec.wall or wall))
        rec.folder = folder
    journal = rec.journal
    if rec.model is not None and rec.model != rec.journaled_model:
        journal.line({"type": "model", "model": rec.model.model_dump()})
        rec.journaled_model = rec.model
    written = 0
    try:
        for packet in rec.packets:
            journal.packet(packet)
            written += 1
    finally:
        del rec.packets[:written]
    observations = rec.observations
    while rec.journaled_obs < len(observations):
        obs = observations[rec.journaled_obs]
        if obs.detections:
            journal.line({"type": "obs", "t": obs.t, "best": obs.best,
                          "detections": [d.to_dict() for d in obs.detections]})
        rec.journaled_obs += 1


def end(rec: Recording) -> None:
    """The recording ended normally: its end line, flushed to the disk, and the files closed."""
    journal = rec.journal
    if journal is None or rec.ended:
        return
    end_t = rec.end_t if rec.end_t is not None and rec.end_t != float("inf") else None
    journal.line({"type": "end", "end_t": end_t})
    journal.sync()
    journal.close()
    rec.journal = None
    rec.ended = True


def sync(rec: Recording) -> None:
    if rec.journal is not None:
        rec.journal.sync()


def close_files(rec: Recording) -> None:
    """Let go of the open files without an end line (the module stops before it ended)."""
    if rec.journal is not None:
        rec.journal.close()
        rec.journal = None


def load(folder: Path) -> Recording:
    """The recording an earlier run left in ``folder`` (its packets stay on disk until the
    clip is made). Raises :class:`JournalError` when the header cannot be read."""
    lines = read_lines(folder)
    head = lines.header
    try:
        mono, utc = float(head["clock"]["mono"]), datetime.fromisoformat(head["clock"]["utc"])
        rec = Recording(str(head["event_id"]), int(head["part"]), float(head["trigger_t"]),
                        head["kind"], dict(head["thresholds"]), [], folder=folder,
                        wall=WallClock(mono, utc), ended=lines.end is not None)
        rec.model = ModelInfo.model_validate(lines.model) if lines.model else None
    except (KeyError, TypeError, ValueError) as exc:
        raise JournalError(f"{folder}: the header is unusable ({exc})") from None
    for doc in lines.observations:
        try:
            detections = [Detection(**d) for d in doc["detections"]]
            rec.add(Observation(float(doc["t"]), detections, float(doc["best"])))
        except (KeyError, TypeError, ValueError, ValidationError):
            lines.damaged_lines += 1
    rec.journaled_obs = len(rec.observations)
    rec.journaled_model = rec.model
    if lines.end is None:
        rec.end_t = float("inf")
        rec.interrupted = REASON_RESTART if head.get("boot_id") == boot_id() else REASON_POWER
    else:
        end_t = lines.end.get("end_t")
        rec.end_t = float("inf") if end_t is None else float(end_t)
    return rec


def clip_packets(rec: Recording) -> tuple[list[EncodedPacket], int]:
    """The recording's video up to its end: the journal's packets, then any the disk refused
    (still in memory); and how many damaged regions of the journal were skipped."""
    on_disk = read_packets(rec.folder) if rec.folder is not None else None
    packets = (on_disk.packets if on_disk else []) + list(rec.packets)
    if on_disk and on_disk.packets and rec.packets:
        packets = _one_info_per_session(packets)
    end_t = rec.end_t if rec.end_t is not None else float("inf")
    return [p for p in packets if p.t <= end_t], on_disk.damaged if on_disk else 0


def _one_info_per_session(packets: list[EncodedPacket]) -> list[EncodedPacket]:
    """A session split between the journal and memory (the disk filled up in the middle) is
    one run again: packets read back carry a rebuilt StreamInfo equal to the live one."""
    canonical: dict[StreamInfo, StreamInfo] = {}
    out = []
    for packet in packets:
        info = canonical.setdefault(packet.info, packet.info)
        out.append(packet if info is packet.info else dataclasses.replace(packet, info=info))
    return out
