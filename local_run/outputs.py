"""The modules' output messages as local mode writes them, read back as contract models.

A module in local mode appends every message to ``<data>/outputs/<output>.jsonl``, one JSON
object per line with ``ts`` (when it was sent, on the wall clock), ``output``, ``type`` and
``body``. Readers here turn each line into its :mod:`contracts.messages` model, so the demo,
its score and the benchmark read fields by name and a renamed field or type fails loudly.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from contracts.messages import Message, read_message

#: One line of an outputs file, as JSON.
OutputLine = dict[str, Any]
M = TypeVar("M", bound=Message)


@dataclass(frozen=True)
class Sent:
    """One message and when its module sent it: stages are timed by this, not by the times
    in the body, which are the camera's stream clock."""

    ts: datetime
    message: Message


def read_lines(path: Path) -> list[OutputLine]:
    """Every whole line of an outputs file so far (none when the module has sent nothing).

    A line being appended right now may be incomplete: only whole lines count."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in lines if line.endswith("}")]


def typed(lines: Iterable[OutputLine]) -> list[Sent]:
    """The lines as models; a type the contracts do not know raises
    :class:`contracts.messages.UnknownMessage`."""
    return [Sent(datetime.fromisoformat(line["ts"]), read_message(line["type"], line["body"]))
            for line in lines]


def of_type(sent: Iterable[Sent], kind: type[M]) -> list[M]:
    """The messages of one model, in the order they were sent."""
    return [s.message for s in sent if isinstance(s.message, kind)]
