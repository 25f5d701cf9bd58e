"""Settings sources as plain dicts, the merge rules between them, and safe parsing.

Twin patches follow IoT Hub's rules: objects merge key by key, arrays and scalars replace, and a
``null`` removes the key so the value falls back to the lower sources.

Every document from outside (a YAML file, an environment value, a twin) is checked before
anything walks it: a settings file is a regular UTF-8 file of at most :data:`MAX_FILE_BYTES`
(never a link, a folder or a FIFO), YAML aliases are refused (a few hundred bytes of them
expand to gigabytes), nesting stops at :data:`MAX_DEPTH` levels (deeper input would end in a
RecursionError half-way through a merge), and only JSON values pass, because the twin can carry
nothing else.
"""

from __future__ import annotations

import copy
import os
import stat
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NoReturn

import yaml

from config.errors import FieldError, SettingsRejected
from infra.logs import excerpt

Doc = dict[str, Any]

#: Largest settings file (a twin's desired properties are at most 32 KB at IoT Hub).
MAX_FILE_BYTES = 64 * 1024
#: Deepest nesting of a settings document, counting the document itself and its values.
MAX_DEPTH = 16
_TIMESTAMP = "tag:yaml.org,2002:timestamp"


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
                value, _ = _parse(raw)
            except yaml.YAMLError:
                value = raw
        node = doc
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return doc


class _Refused(yaml.MarkedYAMLError):
    """YAML that parses but that a settings file may not use."""


class _SettingsLoader(yaml.SafeLoader):
    """The safe loader, also keeping the node tree (so errors can name a line), refusing
    aliases and nesting deeper than :data:`MAX_DEPTH`, before anything is built."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            raise _Refused(problem="YAML aliases (*name) are not allowed in settings files; "
                           "write the value out", problem_mark=self.peek_event().start_mark)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Refused(problem=f"nested deeper than {MAX_DEPTH} levels",
                               problem_mark=self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


# YAML 1.1 reads 2026-12-01 as a date, which no twin (JSON) can carry: it stays text.
_SettingsLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != _TIMESTAMP]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _parse(text: str) -> tuple[Any, yaml.Node | None]:
    loader = _SettingsLoader(text)
    try:
        node = loader.get_single_node()
        return (loader.construct_document(node) if node is not None else None), node
    finally:
        loader.dispose()


def check_document(doc: Any, source: str | None = None) -> list[FieldError]:
    """What must stop a document before anything walks it: nesting deeper than
    :data:`MAX_DEPTH`, a key that is not a string, a value that JSON cannot carry. Iterative,
    so any depth of input is safe to check."""
    stack: list[tuple[Any, str, int]] = [(doc, "", 1)]
    while stack:
        node, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            return [FieldError(path, f"nested deeper than {MAX_DEPTH} levels", source=source)]
        if isinstance(node, dict):
            for key, value in node.items():
                if not isinstance(key, str):
                    return [FieldError(path, f"key {excerpt(key)!r} is not a string",
                                       source=source)]
                stack.append((value, f"{path}.{key}" if path else key, depth + 1))
        elif isinstance(node, list):
            stack.extend((value, f"{path}.{i}", depth + 1) for i, value in enumerate(node))
        elif not (node is None or isinstance(node, bool | int | float | str)):
            return [FieldError(path, f"a {type(node).__name__} is not a settings value (JSON "
                               "values only)", source=source)]
    return []


def load_yaml(text: str, source: str) -> tuple[Doc, yaml.Node | None]:
    """Parse a settings document; a syntax error or a non-mapping names the line."""
    try:
        data, node = _parse(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        reason = problem if isinstance(exc, _Refused) else f"not valid YAML: {problem}"
        raise SettingsRejected([FieldError(path="", reason=reason, source=source, line=line)]
                               ) from None
    if data is None:
        return {}, node
    if not isinstance(data, dict):
        raise SettingsRejected(
            [FieldError(path="", reason="the document must be a mapping of sections",
                        value=type(data).__name__, source=source, line=1)]
        )
    problems = check_document(data, source)
    if problems:
        raise SettingsRejected(problems)
    return data, node


def load_yaml_file(path: Path) -> tuple[Doc, yaml.Node | None]:
    """Read and parse a settings file; a file that cannot be one is a named error."""
    return load_yaml(read_settings_file(path), str(path))


def read_settings_file(path: Path) -> str:
    """The text of a settings file, or :class:`SettingsRejected` saying why it is not one.

    It must be a regular file itself (a link is not followed: it could lead to any file the
    module can read), at most :data:`MAX_FILE_BYTES`, and UTF-8 text. It is opened without
    blocking and checked again once open, so a FIFO or a file swapped in between cannot hang
    the settings thread."""

    def refuse(reason: str) -> NoReturn:
        raise SettingsRejected([FieldError(path="", reason=reason, source=str(path))])

    try:
        info = path.lstat()
    except FileNotFoundError:
        refuse("file not found")
    except OSError as exc:
        refuse(f"cannot read file: {exc.strerror}")
    _check_file_kind(info.st_mode, info.st_size, refuse)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        refuse(f"cannot read file: {exc.strerror}")
    with os.fdopen(fd, "rb") as fh:
        opened = os.fstat(fh.fileno())
        _check_file_kind(opened.st_mode, opened.st_size, refuse)
        data = fh.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        refuse(f"larger than {MAX_FILE_BYTES} bytes, the most a settings file may have")
    if b"\0" in data:
        refuse("not a text file (it contains NUL bytes)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        refuse(f"not UTF-8 text (byte {exc.start})")


def _check_file_kind(mode: int, size: int, refuse: Callable[[str], NoReturn]) -> None:
    if stat.S_ISLNK(mode):
        refuse("a symbolic link; a settings file must be a regular file (the link is not "
               "followed)")
    if stat.S_ISDIR(mode):
        refuse("a folder, not a file")
    if not stat.S_ISREG(mode):
        refuse("not a regular file (a FIFO, socket or device)")
    if size > MAX_FILE_BYTES:
        refuse(f"{size} bytes, more than the {MAX_FILE_BYTES} a settings file may have")


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
