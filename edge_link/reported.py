"""Reported properties within IoT Hub's rules, the same for both links.

IoT Hub refuses a reported patch that would take the module's reported properties past 32 KB,
or that has a key with ``.``, ``$``, a space or a control character, or a key over 1 KB. A
refused patch retried as it is would be refused for ever (and, sent before the outputs, hold
them back). So a link fits each patch first (:func:`fit_reported`): a section the hub would
refuse is replaced by a short note that says why and how big it was, and what the section held
before is cleared, so the twin never shows stale values as if they were current. The next time
the section fits, it is sent whole and the note goes.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from config.fields import NOT_IN_TWIN_KEYS
from infra.logs import event, excerpt

log = logging.getLogger(__name__)

#: IoT Hub's limit for a module's reported properties.
REPORTED_MAX_BYTES = 32 * 1024
KEY_MAX_BYTES = 1024
#: The key of the note that stands in for a section that was not reported.
NOTE = "notReported"


def merge_reported(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """Coalesce reported patches. A ``null`` must survive (it deletes the key in the hub), so
    unlike :func:`config.layers.merge` it is kept rather than applied."""
    result = dict(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merge_reported(result[key], value)
        else:
            result[key] = value
    return result


def apply_reported(held: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """The reported properties as the hub holds them after ``patch``: a ``null`` deletes."""
    result = dict(held)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            base = result.get(key)
            result[key] = apply_reported(base if isinstance(base, dict) else {}, value)
        else:
            result[key] = value
    return result


def size_of(doc: Any) -> int:
    """Bytes of a document as JSON on the wire."""
    return len(json.dumps(doc, separators=(",", ":"), default=str).encode("utf-8"))


def key_problem(doc: Any) -> str | None:
    """Why IoT Hub would refuse a key somewhere in ``doc``, or None."""
    stack = [doc]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if len(str(key).encode("utf-8")) > KEY_MAX_BYTES:
                    return f"a key of over {KEY_MAX_BYTES} bytes ({excerpt(key, 40)!r})"
                if NOT_IN_TWIN_KEYS.search(str(key)):
                    return (f"key {excerpt(key, 40)!r} has a character IoT Hub refuses in keys "
                            "('.', '$', space or a control character)")
                stack.append(value)
        elif isinstance(node, list):
            stack.extend(node)
    return None


def not_reported(held: dict[str, Any], name: str, reason: str, size: int) -> dict[str, Any]:
    """The note that replaces ``name`` in a document whose hub copy is ``held``, clearing what
    the hub held of it."""
    before = held.get(name)
    cleared = {key: None for key in before if key != NOTE} if isinstance(before, dict) else {}
    return {**cleared, NOTE: {"reason": reason, "bytes": size}}


def fit_reported(held: dict[str, Any], patch: dict[str, Any]
                 ) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The patch to send given what the hub ``held``, and what was noted instead of sent
    (dotted place, reason). A note stands in for as little as it can: the part of a section
    (``settings.inForce``) with a refused key, then the largest parts until the whole is within
    :data:`REPORTED_MAX_BYTES`, and a whole section only once its parts are all noted."""
    fitted = {name: dict(v) if isinstance(v, dict) else v for name, v in patch.items()}
    noted: list[tuple[str, str]] = []

    def note(place: tuple[str, ...], reason: str) -> None:
        name = place[0]
        if len(place) == 1:
            fitted[name] = not_reported(held, name, reason, size_of(patch[name]))
        else:
            before = held.get(name)
            fitted[name][place[1]] = not_reported(before if isinstance(before, dict) else {},
                                                  place[1], reason,
                                                  size_of(patch[name][place[1]]))
        noted.append((".".join(place), reason))
        event(log, logging.ERROR, "link.report_not_sent", section=".".join(place),
              reason=reason)

    for place, problem in _refused_keys(patch):
        note(place, problem)
    while size_of(apply_reported(held, fitted)) > REPORTED_MAX_BYTES:
        place = _largest_part(fitted)
        if place is None:
            break
        size = size_of(patch[place[0]] if len(place) == 1 else patch[place[0]][place[1]])
        note(place, f"{size} bytes would take the reported properties past IoT Hub's "
                    f"{REPORTED_MAX_BYTES} byte limit")
    _clear_old_notes(held, fitted)
    return fitted, noted


def _is_note(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get(NOTE), dict)


def _refused_keys(patch: dict[str, Any]) -> list[tuple[tuple[str, ...], str]]:
    """Where a key IoT Hub refuses sits: the section's part holding it, or the section."""
    found: list[tuple[tuple[str, ...], str]] = []
    for name, section in patch.items():
        problem = key_problem({name: section})
        if problem is None:
            continue
        if isinstance(section, dict) and key_problem(dict.fromkeys(section)) is None:
            found += [((name, part), why) for part, value in section.items()
                      if (why := key_problem(value)) is not None]
        else:
            found.append(((name,), problem))
    return found


def _largest_part(fitted: dict[str, Any]) -> tuple[str, ...] | None:
    """The largest section still sent, or rather its largest part still sent, if it has one."""
    sections = [n for n, v in fitted.items() if v is not None and not _is_note(v)]
    if not sections:
        return None
    name = max(sections, key=lambda n: size_of(fitted[n]))
    section = fitted[name]
    if isinstance(section, dict):
        parts = [p for p, v in section.items() if v is not None and p != NOTE and not _is_note(v)]
        if parts:
            return name, max(parts, key=lambda p: size_of(section[p]))
    return (name,)


def _clear_old_notes(held: dict[str, Any], fitted: dict[str, Any]) -> None:
    """A section (or part) sent in full again takes the place of its earlier note."""
    for name, section in fitted.items():
        before = held.get(name)
        if not (isinstance(section, dict) and isinstance(before, dict)):
            continue
        if NOTE not in section and _is_note(before):
            section[NOTE] = None
        for part, value in section.items():
            if isinstance(value, dict) and NOTE not in value and _is_note(before.get(part)):
                section[part] = {**value, NOTE: None}
