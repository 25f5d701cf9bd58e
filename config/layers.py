"""Settings sources as plain dicts, and the merge rules between them.

Twin patches follow IoT Hub's rules: objects merge key by key, arrays and scalars replace, and a
``null`` removes the key so the value falls back to the lower sources.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from config.errors import FieldError, SettingsRejected

Doc = dict[str, Any]


def merge(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> Doc:
    """A new dict: ``overlay`` merged into ``base`` (JSON merge patch, RFC 7386)."""
    result: Doc = copy.deepcopy(dict(base))
    for key, value in overlay.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, Mapping) and isinstance(result.get(key), Mapping):
            result[key] = merge(result[key], value)
        else:
            result[key] = copy.deepcopy(value) if isinstance(value, Mapping | list) else value
    return result


def diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> Doc:
    """The merge patch that turns ``old`` into ``new`` (``merge(old, diff(old, new)) == new``)."""
    patch: Doc = {}
    for key in old.keys() - new.keys():
        patch[key] = None
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, Mapping) and isinstance(before, Mapping):
            sub = diff(before, value)
            if sub:
                patch[key] = sub
        elif key not in old or before != value:
            patch[key] = copy.deepcopy(value)
    return patch


def strip_metadata(doc: Mapping[str, Any]) -> Doc:
    """Drop the twin's own keys (``$version``, ``$metadata``) that are not settings."""
    return {
        k: strip_metadata(v) if isinstance(v, Mapping) else v
        for k, v in doc.items()
        if not str(k).startswith("$")
    }


def env_layer(prefix: str, environ: Mapping[str, str] | None = None) -> Doc:
    """Settings from ``<PREFIX><SECTION>__<FIELD>`` variables.

    ``CAMERA_TRIGGER__MIN_SCORE=0.6`` becomes ``{"trigger": {"min_score": "0.6"}}``: scalars stay
    strings and the model converts them by field type; ``[...]`` and ``{...}`` are parsed as
    YAML flow collections (lists, zones, per-label maps). Variables with the prefix but no
    ``__`` are process options (e.g. ``CAMERA_CONFIG``), not settings.
    """
    environ = os.environ if environ is None else environ
    doc: Doc = {}
    for name, raw in sorted(environ.items()):
        if not name.startswith(prefix) or "__" not in name:
            continue
        parts = [p.lower() for p in name[len(prefix):].split("__")]
        if not raw.strip():
            continue
        value: Any = raw
        if raw.lstrip().startswith(("[", "{")):
            try:
                value = yaml.safe_load(raw)
            except yaml.YAMLError:
                value = raw
        node = doc
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return doc


class _LineLoader(yaml.SafeLoader):
    """A safe loader that also keeps the node tree, so errors can name a line."""


def load_yaml(text: str, source: str) -> tuple[Doc, yaml.Node | None]:
    """Parse a settings document; a syntax error or a non-mapping names the line."""
    try:
        node = yaml.compose(text, Loader=_LineLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise SettingsRejected(
            [FieldError(path="", reason=f"not valid YAML: {problem}", source=source, line=line)]
        ) from None
    if data is None:
        return {}, node
    if not isinstance(data, dict):
        raise SettingsRejected(
            [FieldError(path="", reason="the document must be a mapping of sections",
                        value=type(data).__name__, source=source, line=1)]
        )
    return data, node


def load_yaml_file(path: Path) -> tuple[Doc, yaml.Node | None]:
    """Read and parse a settings file; an unreadable file is a named error, not a traceback."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsRejected(
            [FieldError(path="", reason=f"cannot read file: {exc}", source=str(path))]
        ) from None
    return load_yaml(text, str(path))


def line_of(node: yaml.Node | None, path: str) -> int | None:
    """1-based line of the key at a dotted path in a composed YAML tree (the deepest found)."""
    line = None
    for part in path.split(".") if path else []:
        if isinstance(node, yaml.MappingNode):
            match = next((kv for kv in node.value if kv[0].value == part), None)
            if match is None:
                break
            line = match[0].start_mark.line + 1
            node = match[1]
        elif isinstance(node, yaml.SequenceNode) and part.isdigit() and int(part) < len(node.value):
            node = node.value[int(part)]
            line = node.start_mark.line + 1
        else:
            break
    return line


def has_path(doc: Mapping[str, Any], path: str) -> bool:
    """Whether a dotted path (dict keys only) exists in a document."""
    node: Any = doc
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True
