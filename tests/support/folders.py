"""The folder settings of a module, for tests that check where its files go."""

from __future__ import annotations

from pathlib import Path

from config.fields import Section


def data_paths(settings: Section, prefix: str = "") -> dict[str, Path]:
    """Dotted setting path -> value of every folder setting that is set (``None`` is off)."""
    found: dict[str, Path] = {}
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, Section):
            found |= data_paths(value, f"{prefix}{name}.")
        elif isinstance(value, Path):
            found[f"{prefix}{name}"] = value
    return found
