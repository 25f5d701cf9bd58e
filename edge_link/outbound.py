"""The IoT Hub link's outbound queue, one file per message, so a crash loses none.

A message handed to the link used to wait in memory until the link's worker sent it: a
SIGKILL or a power cut while the hub was away lost it for good, though its sender (the
uploader's announced marker) took it as sent. Now :meth:`OutboundQueue.put` writes the message
durably (``infra.durable.write_atomic``: fsynced, renamed, folder fsynced) before it returns,
and :meth:`OutboundQueue.done` removes the file only once the hub accepted it. A new process
on the same folder loads the files in the order they were written and sends them first.

A crash after the hub accepted a message and before its file went sends it once more: its
stable message id is what lets a consumer drop the repeat. The queue is bounded in messages
and in bytes, the oldest dropped (counted and logged as ``link.message_dropped``). A queued
file that cannot be read back is moved to ``unreadable/`` and logged by name: it never stops
the link and is never deleted unseen.
"""

from __future__ import annotations

import collections
import itertools
import json
import logging
import os
import re
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from infra.durable import fsync_dir, write_atomic
from infra.logs import event

log = logging.getLogger(__name__)

#: The queue's folder under a module's data folder.
FOLDER = "outbound"
UNREADABLE = "unreadable"
# Zero-padded sequence numbers: the names sort in the order the messages were queued.
_NAME = re.compile(r"(\d{20})\.json")
_TEMP = re.compile(r"\..*\.tmp")


@dataclass(frozen=True, eq=False)
class Queued:
    """One message waiting for the hub; ``data`` is its encoded body. Compared by identity:
    the worker's message is done, not an equal one queued later."""

    seq: int
    output: str
    msg_type: str
    message_id: str | None
    data: bytes

    @property
    def name(self) -> str:
        return f"{self.seq:020d}.json"

    def record(self) -> str:
        return json.dumps({"output": self.output, "type": self.msg_type,
                           "messageId": self.message_id, "body": self.data.decode("utf-8")})


class UnreadableMessage(ValueError):
    """A queued file whose content is not a message this queue wrote."""


def _parse(seq: int, raw: bytes) -> Queued:
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise UnreadableMessage(f"not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise UnreadableMessage("not a JSON object")
    output, msg_type, message_id, body = (doc.get(k) for k in ("output", "type", "messageId",
                                                                "body"))
    if not (isinstance(output, str) and isinstance(msg_type, str) and isinstance(body, str)
            and (message_id is None or isinstance(message_id, str))):
        raise UnreadableMessage("output, type and body must be strings, messageId a string "
                                "or null")
    return Queued(seq, output, msg_type, message_id, body.encode("utf-8"))


class OutboundQueue:
    """Messages in ``folder``, oldest first, at most ``max_count`` of them and ``max_bytes``
    of bodies together. Thread-safe: module threads put, the link's worker peeks and is done."""

    def __init__(self, folder: Path, *, max_count: int, max_bytes: int) -> None:
        self.folder = folder
        self.max_count = max_count
        self.max_bytes = max_bytes
        self.dropped = 0
        self.set_aside = 0
        self._lock = threading.Lock()
        self._entries: collections.deque[Queued] = collections.deque()
        self._bytes = 0
        # Numbered after every name found, so a file that could not be set aside is never
        # overwritten by a new message.
        self._seq = itertools.count(self._load() + 1)

    def put(self, output: str, msg_type: str, message_id: str | None, data: bytes) -> None:
        """Queue a message, on disk before this returns; the oldest go if it is over a bound.

        A disk that refuses the file (full, read-only) leaves the message in memory only,
        logged: it is still sent while the process lives, as before there was a queue."""
        with self._lock:
            entry = Queued(next(self._seq), output, msg_type, message_id, data)
            self._trim(room_for=len(data))
            try:
                write_atomic(self.folder / entry.name, entry.record())
            except OSError as exc:
                event(log, logging.ERROR, "link.message_not_durable", output=output,
                      file=entry.name, error=str(exc), errno=exc.errno)
            self._entries.append(entry)
            self._bytes += len(data)

    def peek(self) -> Queued | None:
        """The oldest message, left in the queue until :meth:`done`."""
        with self._lock:
            return self._entries[0] if self._entries else None

    def done(self, entry: Queued) -> None:
        """The hub accepted ``entry``: its file goes (unless it was dropped meanwhile)."""
        with self._lock:
            if entry not in self._entries:
                return
            self._entries.remove(entry)
            self._bytes -= len(entry.data)
            self._remove(entry)

    def _trim(self, room_for: int | None = None) -> None:
        """Drop the oldest until the queue is within both bounds, with room for one more
        message of ``room_for`` bytes if given."""
        extra, incoming = (0, 0) if room_for is None else (1, room_for)
        while self._entries and (len(self._entries) + extra > self.max_count
                                 or self._bytes + incoming > self.max_bytes):
            self._drop_oldest()

    def _drop_oldest(self) -> None:
        oldest = self._entries.popleft()
        self._bytes -= len(oldest.data)
        self._remove(oldest)
        self.dropped += 1
        event(log, logging.WARNING, "link.message_dropped", output=oldest.output,
              type=oldest.msg_type, dropped_total=self.dropped, reason="queue full while offline")

    def _remove(self, entry: Queued) -> None:
        try:
            (self.folder / entry.name).unlink(missing_ok=True)
            fsync_dir(self.folder)
        except OSError as exc:  # sent again after a restart, with the same message id
            event(log, logging.WARNING, "link.queued_file_not_removed", file=entry.name,
                  error=str(exc))

    def _load(self) -> int:
        """Read what an earlier process left, oldest first; set aside what cannot be read.
        The highest sequence number among the names found, -1 for none."""
        self.folder.mkdir(parents=True, exist_ok=True)
        highest = -1
        for name in sorted(os.listdir(self.folder)):
            path = self.folder / name
            if name == UNREADABLE:
                continue
            if _TEMP.fullmatch(name):
                # A write the crash cut short: it never became a queued message.
                path.unlink(missing_ok=True)
                continue
            match = _NAME.fullmatch(name)
            if match is not None:
                highest = max(highest, int(match.group(1)))
            try:
                if match is None:
                    raise UnreadableMessage("not a queued message name")
                entry = _parse(int(match.group(1)), path.read_bytes())
            except (OSError, UnreadableMessage) as exc:
                self._set_aside(path, str(exc))
                continue
            self._entries.append(entry)
            self._bytes += len(entry.data)
        self._trim()  # the bounds may have been lowered since the files were written
        if self._entries:
            event(log, logging.INFO, "link.queue_loaded", messages=len(self._entries),
                  bytes=self._bytes, folder=self.folder)
        return highest

    def _set_aside(self, path: Path, why: str) -> None:
        """Move an unreadable file to ``unreadable/`` (a unique name: never overwritten)."""
        target = self.folder / UNREADABLE / f"{path.name}.{uuid.uuid4().hex[:8]}"
        try:
            target.parent.mkdir(exist_ok=True)
            os.replace(path, target)
            fsync_dir(self.folder)
        except OSError as exc:
            event(log, logging.ERROR, "link.queued_message_unreadable", file=path.name,
                  error=why, set_aside_error=str(exc))
            return
        self.set_aside += 1
        event(log, logging.ERROR, "link.queued_message_unreadable", file=path.name, error=why,
              set_aside_as=target.relative_to(self.folder))

    def status(self) -> dict[str, Any]:
        """Counters for the reported properties."""
        return {"dropped": self.dropped, "setAside": self.set_aside}
