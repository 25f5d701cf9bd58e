"""Recordings on disk while they happen, so the evidence survives a kill -9 or a power cut.

From the moment an event starts, its recording (pre-roll first) is appended to a folder of
its own, ``<data-dir>/recordings/<stem>/``, never the outbox (the uploader must not see a
clip before it is whole):

- ``video.bin``: the camera's encoded packets, one record each (magic, kind, length, CRC-32,
  then pts, dts, stream time, the stream session, its clock anchor, the keyframe flag and the
  bytes), one record per stream session describing it (codec, size, rate, time base,
  parameter sets), and a record each time a session's clock anchor (the module time its
  stream time starts at, :class:`~camera_module.packets.Anchor`) moves, so the packets of a
  session's first second get the final estimate, as they would in memory. A record is
  handed to the kernel as soon as it is made, so a kill -9 loses nothing already written;
  the file is fsynced every ``recording.sync_interval_s``, so a power cut loses at most that
  much (plus the packets still queued).
- ``journal.jsonl``: a header line (event, part, kind, trigger time, thresholds, the mapping
  of the module's clock to UTC), the model in use, one line per observation with
  detections, and an ``end`` line once the recording ended normally; fsynced with the video.

The folder goes once its clip is in the outbox, so every folder found at start-up is a clip
that was not published: with an ``end`` line it was waiting (a full disk, a stop) and is
published as it was; without one it was cut short and is published as interrupted.

Reading is forgiving, because a crash tears the end of both files and a bad disk may damage
the middle: every record whose checksum holds is kept (after a damaged one, from the next
keyframe on, so the video decodes), a line that does not parse is skipped, and nothing is
given up because it is partial.

Why records rather than fragmented MP4: they keep what the sidecar needs and an MP4 would
drop (each frame's time on the module's clock, the stream sessions a reconnect starts, which
the sidecar's times and gaps come from), each is checked on its own, and the clip is then made
by the same remux as a clip written from memory, so a recovered clip is the same kind of file
as any other.
"""

from __future__ import annotations

import base64
import json
import mmap
import os
import shutil
import struct
import zlib
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from camera_module.packets import Anchor, EncodedPacket, StreamInfo
from infra.durable import fsync_dir

VIDEO_FILE = "video.bin"
JOURNAL_FILE = "journal.jsonl"
MAGIC = b"GEr1"
# magic, kind, body length, CRC-32 of kind and body
RECORD = struct.Struct("<4sBII")
# pts, dts, stream time, journal session, journal anchor (0: none), keyframe
PACKET = struct.Struct("<qqdIIB")
# journal anchor, its value
ANCHOR = struct.Struct("<Id")
KIND_STREAM = 1
KIND_PACKET = 2
KIND_ANCHOR = 3
ANCHOR_EPSILON_S = 0.0005
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


class JournalError(Exception):
    """A recording folder whose header cannot be read: there is nothing to make a clip of."""


def boot_id() -> str | None:
    """This boot of the machine, to tell a module restart from a power cut at recovery."""
    try:
        return BOOT_ID.read_text().strip()
    except OSError:
        return None


def _record(kind: int, body: bytes) -> bytes:
    crc = zlib.crc32(body, zlib.crc32(bytes([kind])))
    return RECORD.pack(MAGIC, kind, len(body), crc) + body


def _stream_record(session: int, info: StreamInfo) -> bytes:
    doc = {"session": session, "live_session": info.session, "codec": info.codec,
           "width": info.width, "height": info.height, "fps": info.fps,
           "time_base": [info.time_base.numerator, info.time_base.denominator],
           "extradata": base64.b64encode(info.extradata).decode()}
    return _record(KIND_STREAM, json.dumps(doc).encode())


class _AppendFile:
    """An append-only file that is either grown by a whole write or left as it was."""

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.size = os.fstat(self._fd).st_size
        self.dirty = False

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view):]
        except OSError:
            # A full disk may take half a record: cut it off, so the file stays whole and
            # the record can be written again once there is room.
            os.ftruncate(self._fd, self.size)
            raise
        self.size += len(data)
        self.dirty = True

    def sync(self) -> None:
        if self.dirty:
            os.fsync(self._fd)
            self.dirty = False

    def close(self) -> None:
        os.close(self._fd)


class JournalWriter:
    """Appends one recording's packets and observations to its folder."""

    def __init__(self, folder: Path, header: dict[str, Any]) -> None:
        created = not folder.exists()
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self._video = _AppendFile(folder / VIDEO_FILE)
        self._lines = _AppendFile(folder / JOURNAL_FILE)
        # Keyed by id() of the live objects, which are kept alive here so no id is reused.
        self._sessions: dict[int, tuple[int, StreamInfo]] = {}
        self._anchors: dict[int, tuple[int, float, Anchor]] = {}
        if self._lines.size == 0:
            self.line({"type": "header", **header})
        self.sync()
        if created:
            fsync_dir(folder.parent)

    def packet(self, packet: EncodedPacket) -> None:
        data, session, anchor_id = b"", self._sessions.get(id(packet.info)), 0
        if session is None:
            session = (len(self._sessions) + 1, packet.info)
            data += _stream_record(session[0], packet.info)
        anchor = packet.anchor
        known = self._anchors.get(id(anchor)) if anchor is not None else None
        if anchor is not None:
            anchor_id = known[0] if known else len(self._anchors) + 1
            if known is None or abs(known[1] - anchor.value) > ANCHOR_EPSILON_S:
                data += _record(KIND_ANCHOR, ANCHOR.pack(anchor_id, anchor.value))
                known = (anchor_id, anchor.value, anchor)
        body = PACKET.pack(packet.pts, packet.dts, packet.offset, session[0], anchor_id,
                           packet.keyframe)
        self._video.write(data + _record(KIND_PACKET, body + packet.data))
        self._sessions[id(packet.info)] = session
        if anchor is not None and known is not None:
            self._anchors[id(anchor)] = known

    def line(self, doc: dict[str, Any]) -> None:
        self._lines.write(json.dumps(doc, separators=(",", ":")).encode() + b"\n")

    def sync(self) -> None:
        """Flush both files to the disk (only what changed since the last sync)."""
        self._video.sync()
        self._lines.sync()

    def close(self) -> None:
        self._video.close()
        self._lines.close()


@dataclass
class JournalLines:
    """What ``journal.jsonl`` says: header, observations, the last model, the end if any."""

    header: dict[str, Any]
    observations: list[dict[str, Any]] = field(default_factory=list)
    model: dict[str, Any] | None = None
    end: dict[str, Any] | None = None  # None: the recording was cut short
    damaged_lines: int = 0


@dataclass
class JournalPackets:
    packets: list[EncodedPacket]
    damaged: int = 0  # damaged or torn regions skipped
    dropped: int = 0  # intact packets left out until a keyframe after a damaged region


def read_lines(folder: Path) -> JournalLines:
    """The journal's lines; a line that does not parse (torn by a crash) is counted, skipped."""
    try:
        raw = (folder / JOURNAL_FILE).read_bytes()
    except OSError as exc:
        raise JournalError(f"{folder / JOURNAL_FILE}: {exc}") from None
    docs, damaged = [], 0
    for line in raw.splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            damaged += 1
            continue
        if isinstance(doc, dict):
            docs.append(doc)
        else:
            damaged += 1
    if not docs or docs[0].get("type") != "header":
        raise JournalError(f"{folder / JOURNAL_FILE}: no header line")
    out = JournalLines(header=docs[0], damaged_lines=damaged)
    for doc in docs[1:]:
        kind = doc.get("type")
        if kind == "obs":
            out.observations.append(doc)
        elif kind == "model":
            out.model = doc.get("model")
        elif kind == "end":
            out.end = doc
    return out


def read_packets(folder: Path) -> JournalPackets:
    """Every intact packet of ``video.bin``, in order, each session with its own StreamInfo."""
    path = folder / VIDEO_FILE
    if not path.exists() or path.stat().st_size == 0:
        return JournalPackets([])
    with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        return _scan(buf)


def _scan(buf: mmap.mmap) -> JournalPackets:
    out = JournalPackets([])
    infos: dict[int, StreamInfo] = {}
    anchors: dict[int, Anchor] = {}
    seen: set[tuple[int, int]] = set()
    need_key, pos, size = False, 0, len(buf)
    while pos + RECORD.size <= size:
        magic, kind, length, crc = RECORD.unpack_from(buf, pos)
        end = pos + RECORD.size + length
        body = buf[pos + RECORD.size:end] if magic == MAGIC and end <= size else b""
        if not body or zlib.crc32(body, zlib.crc32(bytes([kind]))) != crc:
            out.damaged += 1
            need_key = True
            found = buf.find(MAGIC, pos + 1)
            if found < 0:
                break
            pos = found
            continue
        pos = end
        if kind == KIND_STREAM:
            session, info = _stream_info(body)
            infos[session] = info
        elif kind == KIND_ANCHOR:
            anchor_id, value = ANCHOR.unpack(body)
            anchors.setdefault(anchor_id, Anchor(value)).value = value
        elif kind == KIND_PACKET:
            need_key = _packet(body, infos, anchors, seen, need_key, out)
    return out


def _packet(body: bytes, infos: dict[int, StreamInfo], anchors: dict[int, Anchor],
            seen: set[tuple[int, int]], need_key: bool, out: JournalPackets) -> bool:
    """Keep one packet record (unless a damaged region before it means its keyframe is
    gone); whether a keyframe is still needed."""
    pts, dts, offset, session, anchor_id, key = PACKET.unpack_from(body)
    info = infos.get(session)
    anchor = anchors.get(anchor_id) if anchor_id else None
    if (session, dts) in seen:
        return need_key
    if info is None or (anchor_id and anchor is None) or (need_key and not key):
        out.dropped += 1
        return True
    seen.add((session, dts))
    out.packets.append(EncodedPacket(body[PACKET.size:], pts, dts, bool(key), offset, offset,
                                     info, anchor))
    return False


def _stream_info(body: bytes) -> tuple[int, StreamInfo]:
    doc = json.loads(body)
    num, den = doc["time_base"]
    return doc["session"], StreamInfo(doc["live_session"], doc["codec"], doc["width"],
                                      doc["height"], doc["fps"], Fraction(num, den),
                                      base64.b64decode(doc["extradata"]))


def remove(folder: Path) -> None:
    """The recording's clip is in the outbox: its folder goes (and that is made durable, so a
    power cut cannot bring it back as a second clip)."""
    shutil.rmtree(folder, ignore_errors=True)
    fsync_dir(folder.parent)
