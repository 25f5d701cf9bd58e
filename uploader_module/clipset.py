"""One clip in the outbox: its files, its sidecar, and the checks that make it trustworthy.

The camera renames the sidecar into place last, so the sidecar's presence is what makes a clip
complete. A clip whose sidecar cannot be read, or whose video does not match the size and
SHA-256 the sidecar promises, is corrupt: uploading it would put a broken clip in front of an
operator, and deleting it would lose evidence, so it goes to quarantine instead.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from contracts.blob_layout import BadClipId, ClipId
from contracts.clip import SIDECAR_SUFFIX, THUMBNAIL_SUFFIX, VIDEO_SUFFIX, ClipSidecar

CLIP_SUFFIXES = (VIDEO_SUFFIX, THUMBNAIL_SUFFIX, SIDECAR_SUFFIX)


class CorruptClip(Exception):
    """A clip that must not be uploaded as it is; ``reason`` goes into the quarantine note."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ClipFiles:
    """The files of one clip in a folder, named ``<stem>.mp4|.jpg|.json``."""

    folder: Path
    stem: str

    @property
    def video(self) -> Path:
        return self.folder / f"{self.stem}{VIDEO_SUFFIX}"

    @property
    def thumbnail(self) -> Path:
        return self.folder / f"{self.stem}{THUMBNAIL_SUFFIX}"

    @property
    def sidecar(self) -> Path:
        return self.folder / f"{self.stem}{SIDECAR_SUFFIX}"

    def present(self) -> list[Path]:
        """The clip's files that exist, video first and sidecar last (the safe delete order:
        a crash half-way leaves the sidecar, so the clip is looked at again)."""
        return [p for p in (self.video, self.thumbnail, self.sidecar) if p.exists()]


def read_sidecar(path: Path) -> ClipSidecar:
    """The validated sidecar, or :class:`CorruptClip` saying what is wrong with it."""
    try:
        doc = json.loads(path.read_bytes())
    except (UnicodeDecodeError, ValueError) as exc:
        raise CorruptClip(f"sidecar is not JSON: {exc}") from None
    try:
        sidecar = ClipSidecar.model_validate(doc)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}"
                             for e in exc.errors()[:5])
        raise CorruptClip(f"sidecar does not follow the clip contract: {problems}") from None
    try:
        ClipId.of(sidecar)  # its ids become blob names: the layout's reader must accept them
    except BadClipId as exc:
        raise CorruptClip(f"sidecar ids cannot name blobs: {exc}") from None
    return sidecar


def check_clip(files: ClipFiles, sidecar: ClipSidecar) -> None:
    """Raise :class:`CorruptClip` when the files on disk cannot be the clip the sidecar
    describes (wrong name, missing or truncated video, missing thumbnail). The content is
    checked while it is hashed for the upload, before the blob is committed."""
    if sidecar.stem != files.stem:
        raise CorruptClip(f"sidecar describes {sidecar.stem!r} but is named {files.stem!r}")
    if not files.video.exists():
        raise CorruptClip(f"video {files.video.name} is missing")
    size = files.video.stat().st_size
    if size != sidecar.video.bytes:  # cheap: caught before any byte is sent
        raise CorruptClip(f"video is {size} bytes, sidecar says {sidecar.video.bytes}")
    if sidecar.thumbnail and not files.thumbnail.exists():
        raise CorruptClip(f"thumbnail {files.thumbnail.name} is missing")


def check_video(sidecar: ClipSidecar, size: int, sha256: str) -> None:
    """Raise :class:`CorruptClip` unless the video is the one the camera described."""
    if size != sidecar.video.bytes:
        raise CorruptClip(f"video is {size} bytes, sidecar says {sidecar.video.bytes}")
    if sha256 != sidecar.video.sha256:
        raise CorruptClip(f"video sha256 {sha256} does not match the sidecar's "
                          f"{sidecar.video.sha256}")
