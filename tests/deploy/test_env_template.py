"""`.env.template` names every variable the template uses, and holds no secret."""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from cli.deployment import template_variables
from tests.deploy.conftest import agent_modules, desired, sample_variables

SECRET_NAME = re.compile(r"KEY|PASSWORD|CONNECTION_STRING|ConnectionString", re.IGNORECASE)


def coverage_problems(template: dict[str, Any], variables: Mapping[str, str]) -> list[str]:
    """Variables used but not in the file, and stale ones in the file that nothing uses."""
    used = {n for n in template_variables(template) if not n.startswith("MODULES.")}
    return ([f"{n} is used but not in .env.template" for n in sorted(used - variables.keys())]
            + [f"{n} is in .env.template but unused" for n in sorted(variables.keys() - used)])


def test_env_template_covers_exactly_the_template_variables(template: dict[str, Any]) -> None:
    assert coverage_problems(template, sample_variables()) == []


def test_a_new_variable_without_an_env_entry_is_caught(template: dict[str, Any]) -> None:
    changed = copy.deepcopy(template)
    agent_modules(changed)["camera_module"]["env"]["CAMERA_LOGGING__LEVEL"] = {
        "value": "${CAMERA_LOG_LEVEL}"}
    assert coverage_problems(changed, sample_variables()) == [
        "CAMERA_LOG_LEVEL is used but not in .env.template"]


def test_env_template_secrets_are_placeholders() -> None:
    secrets = {k: v for k, v in sample_variables().items() if SECRET_NAME.search(k)}
    assert set(secrets) >= {"CONTAINER_REGISTRY_PASSWORD", "LOCAL_STORAGE_ACCOUNT_KEY",
                            "CLOUD_STORAGE_CONNECTION_STRING"}
    for name, value in secrets.items():
        assert re.search(r"<[^<>]+>", value), f"{name} looks like a real value"
    key_in_string = re.compile(r"AccountKey=(?!<)|SharedAccessKey=(?!<)|sig=(?!<)")
    assert not [v for v in sample_variables().values() if key_in_string.search(v)]


def secret_literals(node: Any, path: str = "") -> list[str]:
    """Paths of secret-named values in the template that are not built from variables."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{path}/{key}"
            if SECRET_NAME.search(key):
                text = value.get("value") if isinstance(value, dict) else value
                if isinstance(text, str) and "$" not in text:
                    found.append(here)
            found += secret_literals(value, here)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += secret_literals(value, f"{path}/{index}")
    return found


def test_template_holds_no_secret(template: dict[str, Any]) -> None:
    assert secret_literals(template) == []
    leaked = copy.deepcopy(template)
    desired(leaked, "azureblobstorageoniotedge")["deviceToCloudUploadProperties"][
        "cloudStorageConnectionString"] = "DefaultEndpointsProtocol=https;AccountKey=abc"
    assert secret_literals(leaked) == [
        "/modulesContent/azureblobstorageoniotedge/properties.desired/"
        "deviceToCloudUploadProperties/cloudStorageConnectionString"]
