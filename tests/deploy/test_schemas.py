"""The template and the manifest generated from it pass SchemaStore's IoT Edge schemas."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from tests.deploy.conftest import (
    DEPLOYMENT_SCHEMA,
    SCHEMAS,
    TEMPLATE_SCHEMA,
    agent_modules,
    expand,
    schema_errors,
)


def test_template_declares_schema_4(template: dict[str, Any]) -> None:
    assert template["$schema-template"] == "4.0.0"


def test_template_validates_against_template_schema(template: dict[str, Any]) -> None:
    assert schema_errors(TEMPLATE_SCHEMA, template) == []


def test_template_schema_catches_a_bad_restart_policy(template: dict[str, Any]) -> None:
    broken = copy.deepcopy(template)
    agent_modules(broken)["camera_module"]["restartPolicy"] = "allways"
    errors = schema_errors(TEMPLATE_SCHEMA, broken)
    assert any("camera_module/restartPolicy" in e for e in errors), errors


@pytest.mark.parametrize("platform", ["amd64", "arm64v8"])
def test_generated_manifest_validates_against_deployment_schema(
    template: dict[str, Any], platform: str
) -> None:
    assert schema_errors(DEPLOYMENT_SCHEMA, expand(template, platform)) == []


def test_deployment_schema_catches_a_misspelt_module_key(manifest: dict[str, Any]) -> None:
    broken = copy.deepcopy(manifest)
    module = agent_modules(broken)["detector_module"]
    module["startuporder"] = module.pop("startupOrder")
    assert any("startuporder" in e for e in schema_errors(DEPLOYMENT_SCHEMA, broken))


def test_deployment_schema_refuses_unserialised_create_options(template: dict[str, Any]) -> None:
    """Sending the template as is (createOptions still an object) is what the schema stops."""
    unexpanded = copy.deepcopy(template)
    unexpanded.pop("$schema-template")
    errors = schema_errors(DEPLOYMENT_SCHEMA, unexpanded)
    assert any(e.endswith("is not of type 'string'") and "createOptions" in e for e in errors)


def test_schema_readme_names_every_schema_with_its_id() -> None:
    """The copies carry their source and licence; a new schema file must be listed too."""
    readme = (SCHEMAS / "README.md").read_text(encoding="utf-8")
    assert "SchemaStore" in readme and "Apache License 2.0" in readme
    for path in SCHEMAS.glob("*.json"):
        schema_id = json.loads(path.read_text(encoding="utf-8"))["id"]
        assert f"`{path.name}`" in readme and schema_id in readme, path.name
