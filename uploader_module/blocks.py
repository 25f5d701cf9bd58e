"""Deterministic blocks of a local file, so an upload interrupted by a crash can resume.

A block id is its index plus the CRC-32 of its bytes. After a restart the same file yields the
same ids, so the blocks the service already holds as uncommitted are recognised and not sent
again; a changed block size or changed bytes yield different ids, which are then simply sent
(the service discards uncommitted blocks that a commit does not name). CRC-32 rather than a
cryptographic digest because it costs a tenth of the CPU: integrity in transit is the job of
each block's transactional MD5 (checked by the service), and a video that changed on disk is
caught by its SHA-256 against the sidecar before anything is committed.
"""

from __future__ import annotations

import base64
import hashlib
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# Below this a second thread costs more than it saves.
PARALLEL_HASH_BYTES = 256 * 1024


@dataclass(frozen=True)
class Block:
    id: str
    offset: int
    length: int


@dataclass(frozen=True)
class FilePlan:
    """A local file cut into blocks, with the digests that identify and verify it."""

    path: Path
    size: int
    md5: bytes
    sha256: str
    blocks: tuple[Block, ...]


def block_id(index: int, data: bytes) -> str:
    """Base64 of ``<index:06d>-<crc32 hex>``: equal length for every block of a blob, as the
    service requires, and tied to the block's position and content."""
    return base64.b64encode(f"{index:06d}-{zlib.crc32(data):08x}".encode("ascii")).decode("ascii")


def read_blocks(path: Path, block_size: int) -> Iterator[bytes]:
    """The file's bytes, one block at a time (only one block is held in memory)."""
    with path.open("rb") as fh:
        while data := fh.read(block_size):
            yield data


class PlanBuilder:
    """Builds a :class:`FilePlan` block by block, so the file can be hashed while the previous
    block is on the wire instead of in a separate pass before the upload."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._md5 = hashlib.md5()
        self._sha256 = hashlib.sha256()
        self._blocks: list[Block] = []
        self._offset = 0

    def add(self, data: bytes) -> Block:
        if len(data) >= PARALLEL_HASH_BYTES:
            # Both digests release the GIL: side by side they take the time of the slower.
            md5 = threading.Thread(target=self._md5.update, args=(data,))
            md5.start()
            self._sha256.update(data)
            md5.join()
        else:
            self._md5.update(data)
            self._sha256.update(data)
        block = Block(block_id(len(self._blocks), data), self._offset, len(data))
        self._blocks.append(block)
        self._offset += len(data)
        return block

    def finish(self) -> FilePlan:
        return FilePlan(self.path, self._offset, self._md5.digest(), self._sha256.hexdigest(),
                        tuple(self._blocks))


def plan_file(path: Path, block_size: int) -> FilePlan:
    """Whole-file MD5 (the blob's Content-MD5) and SHA-256 (checked against the sidecar), and
    the block ids, in one read."""
    builder = PlanBuilder(path)
    for data in read_blocks(path, block_size):
        builder.add(data)
    return builder.finish()
