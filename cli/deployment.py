"""Expand ``deployment.template.json`` into the deployment manifest a device takes.

This does what ``iotedgedev solution genconfig`` does for this project, offline and without
its heavy dependencies, so that the tests can check exactly what an operator deploys:

* ``${MODULES.<name>}`` becomes ``<repository>:<version>-<platform>`` from ``<name>/module.json``
  (the tag ``docker buildx`` pushes, see docs/deploy.md);
* ``$VAR`` / ``${VAR}`` become values from an env file or the environment. Only upper-case names
  are variables: IoT Edge's own tokens (``$upstream``, ``$edgeAgent``) start lower-case and
  are left alone. Substitution happens in string values, never in keys, and a value is not
  expanded again, so a secret containing ``$`` arrives intact;
* ``createOptions`` objects are serialised to compact JSON strings, split into
  ``createOptions01``.. chunks when longer than a twin value may be.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

PLATFORMS = ("amd64", "arm64v8")

# IoT Hub refuses module twin string values over 512 bytes ("Property or Tag value should be
# maximum 512 bytes", Azure/iotedge#207), so edgeAgent reassembles createOptions from
# createOptions, createOptions01 .. createOptions07 (Azure/iotedge#396; iotedgedev and the
# VS Code extension split at 512 characters into at most 8 chunks).
TWIN_VALUE_MAX_CHARS = 512
CREATE_OPTIONS_MAX_CHUNKS = 8

_VARIABLE = re.compile(r"\$\{(?P<braced>[^}]+)\}|\$(?P<bare>[A-Z_][A-Z0-9_]*)")
_PLACEHOLDER = re.compile(r"<[^<>]+>")
_CREATE_OPTIONS_KEY = re.compile(r"^(createOptions|createoptions)[0-9]*$")


class DeploymentError(ValueError):
    """The template cannot be expanded: names every missing variable or oversized value."""


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines (``#`` comments, blank lines, optional quotes), as docker's --env-file.

    Values are taken literally up to the end of the line: a storage key or connection string
    holds ``=``, ``;`` and ``/`` and must not be split or unescaped.
    """
    values: dict[str, str] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key = key.removeprefix("export ").strip()
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise DeploymentError(f"{path}:{number}: expected KEY=VALUE, got {raw!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key] = value
    return values


def module_images(root: Path, platform: str, variables: Mapping[str, str]) -> dict[str, str]:
    """``MODULES.<name>`` -> image reference, for every ``<name>/module.json`` under root."""
    if platform not in PLATFORMS:
        raise DeploymentError(f"unknown platform {platform!r}; use {', '.join(PLATFORMS)}")
    images: dict[str, str] = {}
    for module_json in sorted(root.glob("*/module.json")):
        image = json.loads(module_json.read_text(encoding="utf-8"))["image"]
        if platform not in image["tag"]["platforms"]:
            raise DeploymentError(f"{module_json} has no Dockerfile for {platform}")
        repository = _expand_string(image["repository"], variables, str(module_json))
        images[f"MODULES.{module_json.parent.name}"] = (
            f"{repository}:{image['tag']['version']}-{platform}"
        )
    return images


def template_variables(template: Any) -> set[str]:
    """Every variable name the template's string values refer to (``MODULES.*`` included)."""
    names: set[str] = set()
    for text in _strings(template):
        for match in _VARIABLE.finditer(text):
            names.add(match["braced"] or match["bare"])
    return names


def unfilled(variables: Mapping[str, str], names: set[str]) -> list[str]:
    """Names whose value is still a ``<placeholder>`` from .env.template."""
    return sorted(n for n in names if _PLACEHOLDER.search(variables.get(n, "")))


def serialize_create_options(settings: dict[str, Any], where: str) -> dict[str, Any]:
    """Settings with createOptions as a compact JSON string, chunked at the twin value limit."""
    keys = [k for k in settings if _CREATE_OPTIONS_KEY.match(k)]
    if not keys:
        return settings
    if len(keys) > 1:
        raise DeploymentError(f"{where}: write createOptions once, as an object; the chunks "
                              f"are made here (found {', '.join(keys)})")
    options = settings[keys[0]]
    text = json.dumps(json.loads(options) if isinstance(options, str) else options,
                      separators=(",", ":"))
    chunks = [text[i:i + TWIN_VALUE_MAX_CHARS] for i in range(0, len(text), TWIN_VALUE_MAX_CHARS)]
    if len(chunks) > CREATE_OPTIONS_MAX_CHUNKS:
        raise DeploymentError(
            f"{where}: createOptions is {len(text)} characters once serialised; IoT Edge takes "
            f"at most {CREATE_OPTIONS_MAX_CHUNKS} x {TWIN_VALUE_MAX_CHARS}"
        )
    result = {k: v for k, v in settings.items() if k != keys[0]}
    result["createOptions"] = chunks[0]
    for index, chunk in enumerate(chunks[1:], start=1):
        result[f"createOptions{index:02d}"] = chunk
    return result


def generate(template: dict[str, Any], variables: Mapping[str, str], *, root: Path,
             platform: str, refuse_placeholders: bool = False) -> dict[str, Any]:
    """The deployment manifest for one platform: variables filled in, createOptions strings.

    ``refuse_placeholders`` stops a manifest with .env.template's ``<placeholders>`` from
    reaching a device, where it would fail late and far away (a registry login, a blob key).
    """
    values = {**variables, **module_images(root, platform, variables)}
    names = template_variables(template)
    missing = sorted(names - values.keys())
    if missing:
        raise DeploymentError(f"variables not set: {', '.join(missing)} (add them to the env "
                              "file or the environment; see .env.template)")
    # MODULES.* are derived from the registry address, which is reported by its own name.
    own = {n for n in names if not n.startswith("MODULES.")}
    left = unfilled(values, own) if refuse_placeholders else []
    if left:
        raise DeploymentError(f"still <placeholders>: {', '.join(left)}")
    expanded = _expand(template, values, "")
    expanded.pop("$schema-template", None)
    agent = expanded["modulesContent"]["$edgeAgent"]["properties.desired"]
    for group in ("systemModules", "modules"):
        for name, module in agent.get(group, {}).items():
            module["settings"] = serialize_create_options(module["settings"], name)
    return expanded


def generate_file(template_path: Path, *, env_file: Path | None, platform: str,
                  environ: Mapping[str, str] | None = None,
                  refuse_placeholders: bool = False) -> dict[str, Any]:
    """:func:`generate` for a template on disk; the environment wins over the env file.

    So CI can inject a secret without writing it into a file, as docker compose does.
    """
    variables = read_env_file(env_file) if env_file else {}
    variables.update(os.environ if environ is None else environ)
    template = json.loads(template_path.read_text(encoding="utf-8"))
    return generate(template, variables, root=template_path.parent, platform=platform,
                    refuse_placeholders=refuse_placeholders)


def _strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for value in node.values():
            yield from _strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _strings(value)


def _expand(node: Any, values: Mapping[str, str], path: str) -> Any:
    if isinstance(node, str):
        return _expand_string(node, values, path)
    if isinstance(node, dict):
        return {k: _expand(v, values, f"{path}/{k}") for k, v in node.items()}
    if isinstance(node, list):
        return [_expand(v, values, f"{path}/{i}") for i, v in enumerate(node)]
    return node


def _expand_string(text: str, values: Mapping[str, str], where: str) -> str:
    def replace(match: re.Match[str]) -> str:
        name = match["braced"] or match["bare"]
        if name not in values:
            raise DeploymentError(f"{where}: variable {name} is not set")
        return values[name]

    return _VARIABLE.sub(replace, text)
