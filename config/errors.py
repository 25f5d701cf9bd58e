"""Settings errors that name the field, the bad value, why, and where it came from."""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from config.fields import Section
from infra.logs import EXCERPT_CHARS, excerpt

# A reason can quote a key or a value of its own (``unknown key '...'``): it gets some room
# beyond the excerpt it quotes, and no more.
_REASON_CHARS = 2 * EXCERPT_CHARS


@dataclass(frozen=True)
class FieldError:
    """One rejected value. ``source`` is the layer that supplied it (file, env, twin).

    Path, reason and value are cut to short redacted excerpts as the error is made, so no
    rejection can carry a secret or a 30 kB value into a log line or the reported properties.
    """

    path: str
    reason: str
    value: Any = None
    source: str | None = None
    line: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", excerpt(self.path))
        object.__setattr__(self, "reason", excerpt(self.reason, _REASON_CHARS))
        object.__setattr__(self, "value", excerpt(self.value))

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    def __str__(self) -> str:
        where = self.source or ""
        if self.line is not None:
            where = f"{where}:{self.line}" if where else f"line {self.line}"
        prefix = f"{where}: " if where else ""
        got = "" if self.value is None else f" (got {self.value!r})"
        return f"{prefix}{self.path or '<document>'}: {self.reason}{got}"


class SettingsRejected(Exception):
    """Raised when a candidate settings document does not validate as a whole."""

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        super().__init__("; ".join(str(e) for e in errors))


def _field_names(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Valid keys at the place an unknown key was found, for a did-you-mean hint."""
    current: type[BaseModel] = model
    for part in loc[:-1]:
        info = current.model_fields.get(str(part))
        annotation = info.annotation if info else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        current = annotation
    names: list[str] = []
    for name, info in current.model_fields.items():
        names.append(name)
        alias = info.validation_alias
        choices = getattr(alias, "choices", None)
        if choices:
            names.extend(str(c) for c in choices)
    return names


def errors_from_validation(exc: ValidationError, model: type[Section]) -> list[FieldError]:
    """Turn pydantic's errors into FieldErrors; unknown keys get a close-match suggestion."""
    found: list[FieldError] = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        path = ".".join(str(p) for p in loc)
        reason = err["msg"]
        if err["type"] == "extra_forbidden":
            key = str(loc[-1])
            reason = f"unknown key {excerpt(key, 64)!r}"
            close = difflib.get_close_matches(key, _field_names(model, loc), n=1)
            if close:
                reason += f" (did you mean {close[0]!r}?)"
        elif reason.startswith("Value error, "):
            reason = reason.removeprefix("Value error, ")
        found.append(FieldError(path=path, reason=reason, value=err.get("input")))
    return found
