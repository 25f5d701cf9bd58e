"""HTTP Range requests (RFC 9110) for the video proxy: one byte range, or the whole blob.

A browser's ``<video>`` seeks with ``Range: bytes=N-``; answering those with 206 and the
exact part is what lets an operator jump to a detection in a long clip without downloading
everything before it.
"""

from __future__ import annotations

import re

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class Unsatisfiable(ValueError):
    """The range lies outside the blob: answer 416 with ``Content-Range: bytes */size``."""


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) byte, inclusive, or None to send the whole blob.

    Syntax the server does not support (several ranges, other units, garbage) is ignored as
    the RFC allows, which means a 200 with everything.
    """
    if not header:
        return None
    match = _RANGE.match(header.strip().replace(" ", ""))
    if match is None:
        return None
    first, last = match.groups()
    if first == "" and last == "":
        return None
    if first == "":  # suffix: the last N bytes
        count = int(last)
        if count == 0 or size == 0:
            raise Unsatisfiable(header)
        return max(0, size - count), size - 1
    start = int(first)
    end = size - 1 if last == "" else int(last)
    if last != "" and end < start:
        return None  # invalid: ignore
    if start >= size:
        raise Unsatisfiable(header)
    return start, min(end, size - 1)
