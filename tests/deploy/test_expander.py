"""The project's expander: what genconfig writes is what the template and the variables say."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from cli.deployment import (
    CREATE_OPTIONS_MAX_CHUNKS,
    TWIN_VALUE_MAX_CHARS,
    DeploymentError,
    generate,
    read_env_file,
    serialize_create_options,
)
from cli.main import main
from tests.deploy.conftest import (
    MODULE_DIRS,
    ROOT,
    agent_modules,
    load_template,
    sample_variables,
)

CHUNK_KEY = re.compile(r"^createOptions(\d\d)?$")


def create_options_of(settings: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    """The chunks in the order edgeAgent joins them, and the object they make."""
    keys = sorted(k for k in settings if CHUNK_KEY.match(k))
    chunks = [settings[k] for k in keys]
    return chunks, json.loads("".join(chunks))


def all_module_settings(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    agent = document["modulesContent"]["$edgeAgent"]["properties.desired"]
    return {name: module["settings"]
            for group in ("systemModules", "modules") for name, module in agent[group].items()}


def test_every_create_options_is_json_within_the_twin_limit(manifest: dict[str, Any]) -> None:
    template_settings = all_module_settings(load_template())
    for name, settings in all_module_settings(manifest).items():
        chunks, options = create_options_of(settings)
        assert 1 <= len(chunks) <= CREATE_OPTIONS_MAX_CHUNKS, name
        assert all(isinstance(c, str) and len(c) <= TWIN_VALUE_MAX_CHARS for c in chunks), name
        assert options == template_settings[name]["createOptions"], name


def test_each_create_options_fits_one_value(manifest: dict[str, Any]) -> None:
    """Unchunked, so the manifest also works where chunks are not understood (IoT Central)."""
    for name, settings in all_module_settings(manifest).items():
        assert [k for k in settings if CHUNK_KEY.match(k)] == ["createOptions"], name


def test_long_create_options_are_chunked_in_order() -> None:
    options = {"Env": [f"VARIABLE_{i}={'x' * 40}" for i in range(30)]}
    settings = serialize_create_options({"image": "i", "createOptions": options}, "m")
    chunks, joined = create_options_of(settings)
    assert len(chunks) == 4 and list(settings)[1:] == [
        "createOptions", "createOptions01", "createOptions02", "createOptions03"]
    assert joined == options and all(len(c) <= TWIN_VALUE_MAX_CHARS for c in chunks)


def test_create_options_beyond_eight_chunks_are_refused() -> None:
    options = {"Env": ["X=" + "y" * (TWIN_VALUE_MAX_CHARS * CREATE_OPTIONS_MAX_CHUNKS)]}
    with pytest.raises(DeploymentError, match="at most 8 x 512"):
        serialize_create_options({"image": "i", "createOptions": options}, "m")


@pytest.mark.parametrize("platform", ["amd64", "arm64v8"])
def test_module_images_come_from_module_json(platform: str) -> None:
    variables = sample_variables() | {"CONTAINER_REGISTRY_ADDRESS": "acr.example.io"}
    manifest = generate(load_template(), variables, root=ROOT, platform=platform)
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    for module in MODULE_DIRS:
        image = agent_modules(manifest)[module]["settings"]["image"]
        assert image == f"acr.example.io/{module}:{version}-{platform}"


def test_variables_fill_values_and_leave_edge_tokens_alone(manifest: dict[str, Any]) -> None:
    variables = sample_variables()
    blob = agent_modules(manifest)["azureblobstorageoniotedge"]
    assert blob["env"]["LOCAL_STORAGE_ACCOUNT_KEY"]["value"] == variables[
        "LOCAL_STORAGE_ACCOUNT_KEY"]
    routes = manifest["modulesContent"]["$edgeHub"]["properties.desired"]["routes"]
    assert all(r["route"].endswith("INTO $upstream") for r in routes.values())
    assert "$schema-template" not in manifest


def test_a_value_is_not_expanded_twice() -> None:
    template = {"modulesContent": {"$edgeAgent": {"properties.desired": {}},
                                   "m": {"properties.desired": {"secret": "${SECRET}"}}}}
    variables = {"SECRET": "a$B${C}", "CONTAINER_REGISTRY_ADDRESS": "acr.example.io"}
    manifest = generate(template, variables, root=ROOT, platform="amd64")
    assert manifest["modulesContent"]["m"]["properties.desired"]["secret"] == "a$B${C}"


def test_missing_variables_are_all_named() -> None:
    variables = sample_variables()
    del variables["CLOUD_CLIPS_CONTAINER"], variables["LOCAL_STORAGE_ACCOUNT_KEY"]
    with pytest.raises(DeploymentError,
                       match="CLOUD_CLIPS_CONTAINER, LOCAL_STORAGE_ACCOUNT_KEY"):
        generate(load_template(), variables, root=ROOT, platform="amd64")


def test_placeholders_are_refused_when_asked() -> None:
    with pytest.raises(DeploymentError, match="CONTAINER_REGISTRY_PASSWORD"):
        generate(load_template(), sample_variables(), root=ROOT, platform="amd64",
                 refuse_placeholders=True)


def test_env_file_values_are_literal(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("# comment\n\nA=x=y;z/==\nexport B='quoted value'\nC=\"$NOT_EXPANDED\"\n")
    assert read_env_file(env) == {"A": "x=y;z/==", "B": "quoted value", "C": "$NOT_EXPANDED"}
    env.write_text("no equals sign here\n")
    with pytest.raises(DeploymentError, match=":1: expected KEY=VALUE"):
        read_env_file(env)


def filled_env(path: Path) -> Path:
    """.env.template with every placeholder replaced, as an operator leaves it."""
    text = re.sub(r"<[^<>]+>", "filled", (ROOT / ".env.template").read_text())
    path.write_text(text)
    return path


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Run from the repository root with none of the template's variables in the environment
    (the environment wins over --env, and a developer's shell may have some set)."""
    monkeypatch.chdir(ROOT)
    for name in read_env_file(ROOT / ".env.template"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_cli_genconfig_writes_the_manifest(tmp_path: Path, clean_env: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "out" / "deployment.json"
    code = main(["deploy", "genconfig", "--env", str(filled_env(tmp_path / ".env")),
                 "--platform", "arm64v8", "-o", str(output)])
    assert code == 0, capsys.readouterr().err
    manifest = json.loads(output.read_text())
    assert agent_modules(manifest)["camera_module"]["settings"]["image"].endswith("-arm64v8")


def test_cli_genconfig_refuses_placeholders(tmp_path: Path, clean_env: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    output = tmp_path / "deployment.json"
    code = main(["deploy", "genconfig", "--env", ".env.template", "-o", str(output)])
    assert code == 1 and not output.exists()
    assert "LOCAL_STORAGE_ACCOUNT_KEY" in capsys.readouterr().err


def test_environment_wins_over_the_env_file(tmp_path: Path,
                                            clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("CONTAINER_REGISTRY_ADDRESS", "from-environment.example.io")
    output = tmp_path / "deployment.json"
    assert main(["deploy", "genconfig", "--env", str(filled_env(tmp_path / ".env")),
                 "-o", str(output)]) == 0
    image = agent_modules(json.loads(output.read_text()))["uploader_module"]["settings"]["image"]
    assert image.startswith("from-environment.example.io/uploader_module:")
