"""Identifiers that come from outside (twin, HTTP path, sidecar, blob name), checked once.

Model names and versions, camera and train ids, Custom Vision projects and iterations, event
ids and clip stems all end up in a file path, a blob name or a log line. One rule for all of
them, applied where the value enters (a settings model, a request route, a sidecar, a blob
listing) and never again downstream: 1 to 64 characters (event ids, which embed a camera id,
up to 100), letters, digits, ``.``, ``_`` and ``-``, starting with a letter or a digit. That
rules out ``.``, ``..``, separators, spaces, control characters and anything a shell, a URL or
a log parser would read differently.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

NAME_MAX = 64
EVENT_ID_MAX = 100
_IDENTIFIER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
# What a refusal quotes of a bad value: enough to recognise it, never a whole secret or blob.
EXCERPT = 40


class BadIdentifier(ValueError):
    """A value from outside that is not an identifier; the message names what it was for."""


def is_identifier(value: object, *, max_length: int = NAME_MAX) -> bool:
    """Whether ``value`` passes the rule: for sorting out what a listing holds, where a name
    that does not pass is skipped rather than refused."""
    return isinstance(value, str) and len(value) <= max_length and bool(
        _IDENTIFIER.fullmatch(value))


def check_identifier(value: object, what: str, *, max_length: int = NAME_MAX) -> str:
    """``value`` if it is an identifier, else :class:`BadIdentifier` naming ``what``."""
    if is_identifier(value, max_length=max_length):
        assert isinstance(value, str)
        return value
    shown = repr(value)[:EXCERPT] if isinstance(value, str) else type(value).__name__
    raise BadIdentifier(f"{what} {shown} is not a valid identifier: 1 to {max_length} letters, "
                        "digits, '.', '_' or '-', starting with a letter or digit")


def _name(value: str) -> str:
    return check_identifier(value, "identifier")


def _event_id(value: str) -> str:
    return check_identifier(value, "event id", max_length=EVENT_ID_MAX)


#: A pydantic field type for names (model, version, camera, train, project, iteration).
Identifier = Annotated[str, AfterValidator(_name)]
#: A pydantic field type for event ids and clip stems.
EventId = Annotated[str, AfterValidator(_event_id)]
