"""Clip ids: the blob name of a clip without its extension, checked against the layout.

A clip id is ``<train>/<camera>/<YYYY>/<MM>/<DD>/<HHMMSS>_<stem>`` (uploader_module/naming.py).
Anything else that arrives from a browser is refused before it becomes a blob name, so a
crafted id can never name a blob outside the clip layout (``..``, absolute names, backslashes,
percent-encoded tricks).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from contracts.clip import SIDECAR_SUFFIX, THUMBNAIL_SUFFIX, VIDEO_SUFFIX

REVIEW_SUFFIX = ".review.json"
_ID = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}"
CLIP_ID = re.compile(
    rf"^(?P<train>{_ID})/(?P<camera>{_ID})/(?P<year>\d{{4}})/(?P<month>\d{{2}})/"
    rf"(?P<day>\d{{2}})/(?P<time>\d{{6}})_(?P<stem>{_ID})$"
)
SEGMENT = re.compile(rf"^{_ID}$")
SUFFIXES = (REVIEW_SUFFIX, VIDEO_SUFFIX, THUMBNAIL_SUFFIX, SIDECAR_SUFFIX)


class BadClipId(ValueError):
    """A clip id (or filter value) that is not in the clip layout."""


@dataclass(frozen=True, order=True)
class ClipId:
    """A parsed clip id; ``str()`` gives it back."""

    train: str
    camera: str
    day: str  # YYYY/MM/DD
    time: str  # HHMMSS
    stem: str

    def __str__(self) -> str:
        return f"{self.train}/{self.camera}/{self.day}/{self.time}_{self.stem}"

    def blob(self, suffix: str) -> str:
        return str(self) + suffix

    @property
    def iso_day(self) -> str:
        return self.day.replace("/", "-")


def parse(text: str) -> ClipId:
    """The clip id in ``text``; :class:`BadClipId` for anything outside the layout."""
    if ".." in text or "\\" in text or "%" in text or text.startswith("/"):
        raise BadClipId("clip ids never contain '..', '\\', '%' or a leading '/'")
    match = CLIP_ID.match(text)
    if match is None:
        raise BadClipId("not a clip id: expected <train>/<camera>/<YYYY>/<MM>/<DD>/"
                        "<HHMMSS>_<stem>")
    g = match.groupdict()
    return ClipId(g["train"], g["camera"], f"{g['year']}/{g['month']}/{g['day']}", g["time"],
                  g["stem"])


def split_blob(name: str) -> tuple[ClipId, str] | None:
    """(clip id, suffix) of a blob in the layout, or None for any other blob."""
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            try:
                return parse(name[: -len(suffix)]), suffix
            except BadClipId:
                return None
    return None


def check_segment(value: str, what: str) -> str:
    """A train or camera id from a filter: one name segment, nothing that widens a prefix."""
    if not SEGMENT.match(value) or ".." in value:
        raise BadClipId(f"{what} {value!r} is not a valid id")
    return value
