"""The settings checker: every problem in a settings file, each with its line."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from config.errors import FieldError, SettingsRejected, errors_from_validation
from config.layers import line_of, load_yaml_file
from config.registry import module_spec


def check_file(path: Path, module: str) -> list[FieldError]:
    """Every problem in a settings file, each with its line where YAML knows it."""
    model = module_spec(module).settings
    try:
        doc, node = load_yaml_file(path)
    except SettingsRejected as exc:
        return exc.errors
    try:
        model.model_validate(doc)
    except ValidationError as exc:
        return [
            FieldError(e.path, e.reason, e.value, source=str(path), line=line_of(node, e.path))
            for e in errors_from_validation(exc, model)
        ]
    return []
