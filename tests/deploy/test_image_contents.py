"""Each module image holds what it runs: its Dockerfile's build stage, replayed without Docker.

The files the build stage COPYs (minus .dockerignore) go into a fresh folder, and its ENV,
WORKDIR and RUN lines run there with every absolute path moved under that folder: a fresh
virtualenv and ``pip install ".[<module>]"`` exactly as the image gets them. An import the
image cannot satisfy, a package it does not copy or a dependency its extra lacks, then fails
here instead of on a train. The three images are built once per session, side by side.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.deploy.conftest import MODULE_DIRS, PROJECT, ROOT, dockerignore, instructions

BUILD_TIMEOUT_S = 300
SCRIPTS = {target.split(".")[0]: script for script, target in PROJECT["scripts"].items()}


@dataclass(frozen=True)
class Built:
    """One image's stand-in: ``root`` plays ``/``; ``log`` is what its build stage printed."""

    root: Path
    ok: bool
    log: str

    @property
    def bin(self) -> Path:
        return self.root / "opt" / "venv" / "bin"


def build_stage(dockerfile: Path) -> list[tuple[str, str]]:
    """The instructions between the first FROM and the next."""
    steps = instructions(dockerfile)
    starts = [i for i, (keyword, _) in enumerate(steps) if keyword == "FROM"]
    return steps[starts[0] + 1:starts[1]]


def _ignored(relative: str, patterns: list[str]) -> bool:
    name = relative.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatch(name, p.removeprefix("**/")) if p.startswith("**/")
               else fnmatch.fnmatch(relative, p) for p in patterns)


def _copy(source: str, target: Path, patterns: list[str]) -> None:
    """``COPY source target`` from the build context (the repository root)."""
    origin = ROOT / source
    if origin.is_file():
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy2(origin, target / origin.name)
        return
    for path in sorted(origin.rglob("*")):
        relative = path.relative_to(ROOT).as_posix()
        if path.is_file() and not any(_ignored("/".join(relative.split("/")[:n]), patterns)
                                      for n in range(1, relative.count("/") + 2)):
            (target / path.relative_to(origin)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target / path.relative_to(origin))


def _rooted(text: str, root: Path) -> str:
    """Every absolute path in a shell line moved under ``root``."""
    return re.sub(r"(^|(?<=[\s\"'=]))/(?=\w)", f"{root}/", text)


def build(dockerfile: Path, root: Path) -> Built:
    """Replay the build stage of ``dockerfile`` in ``root``; stops at the first failing RUN."""
    patterns = dockerignore()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    workdir = root
    root.mkdir(parents=True, exist_ok=True)
    log: list[str] = []
    for keyword, args in build_stage(dockerfile):
        if keyword == "ENV":
            env.update(item.split("=", 1) for item in args.split())
        elif keyword == "WORKDIR":
            workdir = Path(_rooted(args, root))
            workdir.mkdir(parents=True, exist_ok=True)
        elif keyword == "COPY":
            *sources, target = args.split()
            for source in sources:
                _copy(source.rstrip("/"), workdir / target, patterns)
        elif keyword == "RUN":
            result = subprocess.run(_rooted(args, root), shell=True, cwd=workdir, env=env,
                                    capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
            log.append(f"$ {args}\n{result.stdout[-2000:]}{result.stderr[-4000:]}")
            if result.returncode != 0:
                return Built(root, False, "\n".join(log))
    return Built(root, True, "\n".join(log))


@pytest.fixture(scope="session")
def images(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Built]:
    folder = tmp_path_factory.mktemp("images")
    with ThreadPoolExecutor(len(MODULE_DIRS)) as pool:
        futures = {m: pool.submit(build, ROOT / m / "Dockerfile.amd64", folder / m)
                   for m in MODULE_DIRS}
        return {m: future.result() for m, future in futures.items()}


def run_in(image: Built, *command: str) -> subprocess.CompletedProcess[str]:
    """A command of the image, outside the repository and without this session's PYTHONPATH,
    so only what the image installed can be imported."""
    env = {"PATH": f"{image.bin}{os.pathsep}/usr/bin:/bin", "HOME": str(image.root)}
    return subprocess.run(command, cwd=image.root, env=env, capture_output=True, text=True,
                          timeout=120)


@pytest.fixture(params=MODULE_DIRS)
def image(request: pytest.FixtureRequest, images: dict[str, Built]) -> tuple[str, Built]:
    built = images[request.param]
    assert built.ok, f"{request.param}'s build stage failed:\n{built.log}"
    return request.param, built


def test_every_platform_builds_the_same_file_set() -> None:
    """Only amd64 is replayed here; the arm64v8 build stage must not differ but in its base."""
    for module in MODULE_DIRS:
        amd64, arm64 = (build_stage(ROOT / module / f"Dockerfile.{p}")
                        for p in ("amd64", "arm64v8"))
        assert amd64 == arm64, module


def test_the_module_command_starts_and_the_other_modules_are_absent(
        image: tuple[str, Built]) -> None:
    module, built = image
    result = run_in(built, str(built.bin / SCRIPTS[module]), "--help")
    assert result.returncode == 0 and "usage:" in result.stdout, result.stderr
    present = {path.name for path in built.bin.iterdir()}
    assert SCRIPTS["cli"] in present
    assert not present & {SCRIPTS[m] for m in MODULE_DIRS if m != module}


def test_every_file_of_the_module_package_imports(image: tuple[str, Built]) -> None:
    """Beyond what ``--help`` loads: a file imported only later (a backend, a method)."""
    module, built = image
    code = (f"import importlib, pkgutil, {module}; [importlib.import_module(m.name) for m in "
            f"pkgutil.walk_packages({module}.__path__, '{module}.')]")
    result = run_in(built, str(built.bin / "python"), "-I", "-c", code)
    assert result.returncode == 0, result.stderr


def test_graffiti_edge_checks_the_module_settings(image: tuple[str, Built]) -> None:
    module, built = image
    name = module.removesuffix("_module")
    settings = ROOT / "config" / f"{name}.yaml"
    result = run_in(built, str(built.bin / SCRIPTS["cli"]), "config", "check", str(settings),
                    "--module", name)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"valid settings for the {name} module" in result.stdout
    listing = run_in(built, str(built.bin / SCRIPTS["cli"]), "--help")
    assert listing.returncode == 0, listing.stderr
    commands = set(re.findall(r"^    (\S+)", listing.stdout, re.MULTILINE))
    assert {"config", "method", "deploy"} <= commands
    assert not commands & {"up", "demo", "viewer", "clips"}, "local-only groups in an image"
