"""Settings documents shaped to stress a loader."""

from __future__ import annotations

from typing import Any


def nested(depth: int, key: str = "a") -> dict[str, Any]:
    """``{key: {key: ...}}`` ``depth`` levels deep, built without recursion."""
    doc: dict[str, Any] = {}
    node = doc
    for _ in range(depth):
        node[key] = {}
        node = node[key]
    return doc
