"""Checksums of a downloaded package: ContentMD5 (base64 of the MD5 digest) and/or sha256.

A mismatch says which checksum differs, never the digest of the file that was read: with a
file:// URL from the twin that would tell the cloud the hash of any file on the device.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
from pathlib import Path


class VerifyError(ValueError):
    """The file does not match the checksum the twin gave (or none was given)."""


def digests(path: Path) -> tuple[str, str]:
    """(base64 MD5, hex sha256) of a file, read in 1 MiB blocks."""
    md5, sha = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            md5.update(block)
            sha.update(block)
    return base64.b64encode(md5.digest()).decode("ascii"), sha.hexdigest()


def md5_bytes(content_md5: str) -> bytes:
    """The digest a twin's content_md5 names (base64, or hex); VerifyError if it names none."""
    value = content_md5.strip()
    try:
        raw = base64.b64decode(value, validate=True)
    except binascii.Error:
        raw = b""
    if len(raw) != 16 and len(value) == 32:  # tolerate a hex digest too
        with contextlib.suppress(ValueError):
            raw = bytes.fromhex(value)
    if len(raw) != 16:
        raise VerifyError(f"content_md5 {value[:40]!r} is not a base64 (or hex) MD5 digest")
    return raw


def check_digests(md5_b64: str, sha_hex: str, *, content_md5: str | None,
                  sha256: str | None) -> None:
    """VerifyError unless each checksum given names these digests (a downloaded file's, or
    those recorded with an installed package)."""
    if content_md5 and base64.b64decode(md5_b64) != md5_bytes(content_md5):
        raise VerifyError(f"MD5 mismatch: the file is not the one content_md5 "
                          f"{content_md5.strip()[:40]!r} names")
    if sha256 and sha256.lower() != sha_hex:
        raise VerifyError(f"sha256 mismatch: the file is not the one sha256 {sha256.lower()!r} "
                          "names")


def verify(path: Path, *, content_md5: str | None, sha256: str | None,
           allow_unverified: bool = False) -> tuple[str, str]:
    """The file's (base64 MD5, hex sha256) once every checksum given matched them; with none
    given, VerifyError unless allowed. The digests are what the repository records."""
    if not content_md5 and not sha256 and not allow_unverified:
        raise VerifyError("the twin gives no checksum (content_md5 or sha256) and "
                          "model_repository.allow_unverified is false")
    found = digests(path)
    check_digests(*found, content_md5=content_md5, sha256=sha256)
    return found
