"""Building blocks for the settings models: a strict section base and a documented field.

Units and restart requirements live in the JSON Schema (``x-unit``, ``x-restart-required``) so
that editors, the docs generator and the live-apply logic all read the same facts.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

RESTART_KEY = "x-restart-required"
UNIT_KEY = "x-unit"


class Section(BaseModel):
    """A group of settings for one concern. Unknown keys are errors, so typos never pass."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, validate_default=True, coerce_numbers_to_str=True
    )


def setting(
    default: Any,
    description: str,
    *,
    unit: str | None = None,
    restart: bool = False,
    **constraints: Any,
) -> Any:
    """A settings field whose description, unit and restart need are part of its schema."""
    extra: dict[str, Any] = {}
    if unit:
        extra[UNIT_KEY] = unit
    if restart:
        extra[RESTART_KEY] = True
    return Field(default, description=description, json_schema_extra=extra or None, **constraints)


def section(model: type[BaseModel], description: str) -> Any:
    """A nested section that defaults to its own defaults."""
    return Field(default_factory=model, description=description)


def restart_required_paths(model: type[BaseModel], prefix: str = "") -> set[str]:
    """Dotted paths of every field that only takes effect after a restart."""
    paths: set[str] = set()
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        extra = info.json_schema_extra
        if isinstance(extra, dict) and extra.get(RESTART_KEY):
            paths.add(path)
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            paths |= restart_required_paths(annotation, f"{path}.")
    return paths
