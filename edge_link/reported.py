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
import re
from typing import Any

from infra.logs import event, excerpt

log = logging.getLogger(__name__)

#: IoT Hub's limit for a module's reported properties.
REPORTED_MAX_BYTES = 32 * 1024
KEY_MAX_BYTES = 1024
#: The key of the note that stands in for a section that was not reported.
NOTE = "notReported"
_BAD_KEY_CHARACTER = re.compile(r"[.$ \x00-\x1f\x7f-\x9f]")


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
                if _BAD_KEY_CHARACTER.search(str(key)):
                    return (f"key {excerpt(key, 40)!r} has a character IoT Hub refuses in keys "
                            "('.', '$', space or a control character)")
                stack.append(value)
        elif isinstance(node, list):
            stack.extend(node)
    return None


def not_reported(held: dict[str, Any], name: str, reason: str, size: int) -> dict[str, Any]:
    """The note that replaces section ``name``, clearing what the hub held of it."""
    before = held.get(name)
    cleared = {key: None for key in before if key != NOTE} if isinstance(before, dict) else {}
    return {**cleared, NOTE: {"reason": reason, "bytes": size}}


def fit_reported(held: dict[str, Any], patch: dict[str, Any]
                 ) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The patch to send given what the hub ``held``, and the sections noted instead of sent
    (name, reason). Sections with a refused key go first, then the largest sections until
    the whole is within :data:`REPORTED_MAX_BYTES`."""
    fitted = dict(patch)
    noted: list[tuple[str, str]] = []

    def note(name: str, reason: str) -> None:
        fitted[name] = not_reported(held, name, reason, size_of(patch[name]))
        noted.append((name, reason))
        event(log, logging.ERROR, "link.report_not_sent", section=name, reason=reason)

    for name, section in patch.items():
        problem = key_problem(section)
        if problem is not None:
            note(name, problem)
    while size_of(apply_reported(held, fitted)) > REPORTED_MAX_BYTES:
        sendable = [n for n, v in fitted.items() if v is not None and n not in dict(noted)]
        if not sendable:
            break
        largest = max(sendable, key=lambda n: size_of(fitted[n]))
        note(largest, f"{size_of(patch[largest])} bytes would take the reported properties "
                      f"past IoT Hub's {REPORTED_MAX_BYTES} byte limit")
    for name, section in fitted.items():
        before = held.get(name)
        if (isinstance(section, dict) and NOTE not in section and isinstance(before, dict)
                and NOTE in before):
            fitted[name] = {**section, NOTE: None}
    return fitted, noted
