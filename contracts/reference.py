"""The message reference in docs/messages.md, generated from the message models.

``python -m contracts.reference --write docs/messages.md`` (run by ``make docs``) rewrites the
generated section; a test fails when the committed copy and the models disagree, so the docs
cannot describe a field the code no longer sends.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from contracts.messages import MESSAGE_TYPES, Message
from contracts.outputs import MODULE_OUTPUTS
from infra.markdown import markers, replace_section, section, table_block

MARKERS = markers("messages-reference", "python -m contracts.reference")


def _json_type(schema: dict[str, Any]) -> str:
    """A JSON Schema property as a short type: ``string (date-time) or null``, ``array of ...``."""
    if "anyOf" in schema:
        return " or ".join(_json_type(s) for s in schema["anyOf"])
    if "$ref" in schema:
        return "object (" + schema["$ref"].rsplit("/", 1)[-1] + ")"
    kind = schema.get("type", "any")
    if kind == "array":
        return "array of " + _json_type(schema.get("items", {}))
    return f"{kind} ({schema['format']})" if "format" in schema else str(kind)


def _field_rows(model: type[BaseModel]) -> list[str]:
    properties = model.model_json_schema(by_alias=True)["properties"]
    rows = []
    for name, info in model.model_fields.items():
        wire = info.alias or name
        required = "yes" if info.is_required() else _default(info)
        description = (info.description or "").replace("|", "\\|")
        rows.append(f"| `{wire}` | {_json_type(properties[wire])} | {required} | "
                    f"{description} |")
    return rows


def _default(info: FieldInfo) -> str:
    if info.default_factory is not None:
        return "no (empty)"
    return "no" if info.default is None else f"no (`{info.default}`)"


def _senders(cls: type[Message]) -> str:
    return ", ".join(sorted(m for m, outputs in MODULE_OUTPUTS.items() if cls.OUTPUT in outputs))


def messages_reference() -> str:
    """One table per message type: output, senders, schema version and every body field."""
    return section(MARKERS, (
        table_block(f"`{msg_type}`",
                    " ".join((cls.__doc__ or "").split()) + f" Output `{cls.OUTPUT.value}` "
                    f"(modules that may send to it: {_senders(cls)}); schema version "
                    f"{cls.model_fields['schema_version'].default}.",
                    ("field", "type", "required", "meaning"), _field_rows(cls))
        for msg_type, cls in MESSAGE_TYPES.items()))


def replace_reference(document: str) -> str:
    """The document with its generated section replaced by the current reference."""
    return replace_section(document, MARKERS, messages_reference())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m contracts.reference",
                                     description="Print (or rewrite in FILE) the message "
                                     "reference generated from contracts/messages.py.")
    parser.add_argument("--write", type=Path, metavar="FILE")
    args = parser.parse_args(argv)
    if args.write is None:
        sys.stdout.write(messages_reference() + "\n")
    else:
        args.write.write_text(replace_reference(args.write.read_text()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
