"""Building blocks for the settings models: a strict section base and a documented field.

Units and restart requirements live in the JSON Schema (``x-unit``, ``x-restart-required``) so
that editors, the docs generator and the live-apply logic all read the same facts.
"""

from __future__ import annotations

import re
import types
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator

RESTART_KEY = "x-restart-required"
UNIT_KEY = "x-unit"
#: What editors are told about an identifier field (the rule itself is
#: :func:`contracts.identifiers.check_identifier`, which the field type applies).
IDENTIFIER_SCHEMA = {"pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"}
#: Characters IoT Hub refuses in a twin key (desired or reported).
NOT_IN_TWIN_KEYS = re.compile(r"[.$ \x00-\x1f\x7f-\x9f]")


def _twin_key(value: str) -> str:
    if not 1 <= len(value) <= 128 or NOT_IN_TWIN_KEYS.search(value):
        raise ValueError("a key must be 1 to 128 characters without '.', '$', spaces or "
                         "control characters (IoT Hub refuses such keys in a twin)")
    return value


#: A mapping key inside a setting (a label in a per-label map): IoT Hub's rule for twin keys,
#: so that what is in force can always be reported.
TwinKey = Annotated[str, AfterValidator(_twin_key)]


class Section(BaseModel):
    """A group of settings for one concern. Unknown keys are errors, so typos never pass.

    Numbers are numbers: ``inf`` and ``nan`` are refused everywhere (no bound or timeout means
    anything with them), and so is a boolean where a number is expected, which pydantic would
    otherwise read as 1 or 0 (``cooldown_s: true`` is a mistake, not one second)."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, validate_default=True, coerce_numbers_to_str=True,
        allow_inf_nan=False,
    )

    @field_validator("*", mode="before")
    @classmethod
    def _no_boolean_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields.get(info.field_name or "")
        if field is not None and _boolean_for_number(field.annotation, value):
            raise ValueError("a boolean (true/false) is not a number")
        return value


def _boolean_for_number(annotation: Any, value: Any) -> bool:
    """Whether ``value`` holds a boolean where ``annotation`` wants an int or a float (in
    lists, tuples and mapping values too). Follows the annotation, so it ends."""
    origin = get_origin(annotation)
    args = [a for a in get_args(annotation) if a is not Ellipsis]
    if origin is Annotated:
        return _boolean_for_number(args[0], value)
    if annotation in (int, float):
        return isinstance(value, bool)
    if origin in (Union, types.UnionType):
        return bool not in args and any(_boolean_for_number(a, value) for a in args)
    if origin in (list, tuple) and args and isinstance(value, list | tuple):
        if origin is tuple and len(args) == len(value):
            return any(_boolean_for_number(a, v) for a, v in zip(args, value, strict=True))
        return any(_boolean_for_number(args[0], v) for v in value)
    if origin is dict and len(args) == 2 and isinstance(value, dict):
        return any(_boolean_for_number(args[1], v) for v in value.values())
    return False


def setting(
    default: Any,
    description: str,
    *,
    unit: str | None = None,
    restart: bool = False,
    schema: dict[str, Any] | None = None,
    **constraints: Any,
) -> Any:
    """A settings field whose description, unit and restart need are part of its schema
    (``schema`` adds JSON Schema keywords for editors that the field's type checks itself)."""
    extra: dict[str, Any] = dict(schema or {})
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
