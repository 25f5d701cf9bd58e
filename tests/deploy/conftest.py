"""Shared inputs of the deployment tests: the template, its sample variables, the schemas,
the project table and the Dockerfiles' instructions."""

from __future__ import annotations

import copy
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft4Validator
from referencing import Registry
from referencing.jsonschema import DRAFT4

from cli.deployment import generate, read_env_file

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "docs" / "schemas" / "iot-edge"
TEMPLATE_SCHEMA = "azure-iot-edge-deployment-template-4.0.json"
DEPLOYMENT_SCHEMA = "azure-iot-edge-deployment-2.0.json"
MODULE_DIRS = ("camera_module", "detector_module", "uploader_module")
BLOB_MODULE = "azureblobstorageoniotedge"
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", dockerfile.read_text(encoding="utf-8"))
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            pairs.append((keyword.upper(), rest.strip()))
    return pairs


def dockerignore() -> list[str]:
    """The .dockerignore patterns, without comments and trailing slashes."""
    return [line.strip().rstrip("/") for line in
            (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.startswith("#")]


def load_template() -> dict[str, Any]:
    return json.loads((ROOT / "deployment.template.json").read_text(encoding="utf-8"))


def sample_variables() -> dict[str, str]:
    """The variables an operator starts from: .env.template as committed."""
    return read_env_file(ROOT / ".env.template")


def expand(template: dict[str, Any], platform: str = "amd64") -> dict[str, Any]:
    return generate(copy.deepcopy(template), sample_variables(), root=ROOT, platform=platform)


def validator(schema_file: str) -> Draft4Validator:
    """A draft-04 validator with all four SchemaStore schemas registered under their ids.

    Their cross-references are relative to those ids, so without the registry a validator
    would try to fetch https://json.schemastore.org/... (and there is no network here).
    """
    schemas = {p.name: json.loads(p.read_text(encoding="utf-8")) for p in SCHEMAS.glob("*.json")}
    registry: Registry = Registry().with_resources(
        (schema["id"], DRAFT4.create_resource(schema)) for schema in schemas.values()
    )
    schema = schemas[schema_file]
    Draft4Validator.check_schema(schema)
    return Draft4Validator(schema, registry=registry)


def schema_errors(schema_file: str, document: dict[str, Any]) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator(schema_file).iter_errors(document)]


def agent_modules(manifest: dict[str, Any]) -> dict[str, Any]:
    return manifest["modulesContent"]["$edgeAgent"]["properties.desired"]["modules"]


def desired(manifest: dict[str, Any], module: str) -> dict[str, Any]:
    return manifest["modulesContent"][module]["properties.desired"]


@pytest.fixture(scope="session")
def template() -> dict[str, Any]:
    return load_template()


@pytest.fixture(scope="session")
def manifest(template: dict[str, Any]) -> dict[str, Any]:
    return expand(template)
