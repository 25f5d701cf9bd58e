"""The settings reference in docs/configuration.md, generated from the models themselves.

Generating it (and testing that the committed copy matches) is what keeps the documented
defaults in one place: the models.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from config.fields import RESTART_KEY, UNIT_KEY
from config.registry import MODULES
from infra.markdown import markers, replace_section, section, table_block

MARKERS = markers("settings-reference", "graffiti-edge config docs")


def _default(info: Any) -> str:
    if info.default_factory is not None:
        return "(section)"
    value = info.default
    if value is None:
        return "empty"
    return f"`{json.dumps(value, default=str)}`"


def _rows(model: type[BaseModel], prefix: str) -> list[str]:
    rows: list[str] = []
    for name, info in model.model_fields.items():
        annotation = info.annotation
        path = f"{prefix}{name}"
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            rows += _rows(annotation, f"{path}.")
            continue
        extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
        unit = extra.get(UNIT_KEY, "")
        notes = " **Restart.**" if extra.get(RESTART_KEY) else ""
        description = (info.description or "").replace("|", "\\|")
        rows.append(f"| `{path}` | {_default(info)} | {unit} | {description}{notes} |")
    return rows


def settings_reference() -> str:
    """Markdown tables, one per module, of every setting with default, unit and meaning."""
    return section(MARKERS, (
        table_block(f"{spec.name} module",
                    f"Environment: `{spec.env_prefix}<SECTION>__<FIELD>`, e.g. "
                    f"`{spec.env_prefix}LOGGING__LEVEL=DEBUG`.",
                    ("setting", "default", "unit", "meaning"), _rows(spec.settings, ""))
        for spec in MODULES.values()))


def replace_reference(document: str) -> str:
    """The document with its generated section replaced by the current reference."""
    return replace_section(document, MARKERS, settings_reference())
