"""The committed docs and schemas must say what the code does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from config.reference import replace_reference
from config.registry import MODULES

ROOT = Path(__file__).resolve().parents[1]


def test_settings_reference_in_docs_is_current() -> None:
    doc = (ROOT / "docs" / "configuration.md").read_text()
    assert replace_reference(doc) == doc, "run `make docs` to regenerate the reference"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_committed_json_schema_is_current(module: str) -> None:
    committed = json.loads((ROOT / "docs" / "schemas" / f"{module}.schema.json").read_text())
    generated = MODULES[module].settings.model_json_schema()
    assert committed["properties"] == generated["properties"]
    assert committed["$defs"] == generated["$defs"], "run `make docs`"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_local_twin_files_are_valid(module: str) -> None:
    from config.check import check_file

    assert check_file(ROOT / "config" / f"{module}.yaml", module) == []


def test_message_reference_in_docs_is_current() -> None:
    from contracts.reference import replace_reference as replace_messages

    doc = (ROOT / "docs" / "messages.md").read_text()
    assert replace_messages(doc) == doc, "run `make docs` to regenerate the message reference"
