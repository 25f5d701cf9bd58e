"""The import layers between the top-level packages: one way down, never around in a circle.

An import inside a function counts as much as one at the top of a file: it runs in the same
process, so a cycle through it is still a cycle, and a module image without the imported
package still fails once the function runs. Each package may import only the packages its
row of :data:`ALLOWED` names; a new top-level package needs a row.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SHARED = {"contracts", "infra", "config", "edge_link"}
MODULES = {"camera_module", "detector_module", "uploader_module"}
# package -> the packages it may import. Shared layers first, then the modules (never each
# other), then the local tools, then the command and the benchmarks on top.
ALLOWED: dict[str, set[str]] = {
    "contracts": {"infra"},
    "infra": set(),
    "config": {"contracts", "infra"},
    "edge_link": {"config", "contracts", "infra"},
    **{module: set(SHARED) for module in MODULES},
    # The sample tools score models through the product's own detector and trigger.
    "samples": {"config", "contracts", "infra", "camera_module", "detector_module"},
    "local_run": {"config", "contracts", "infra", "samples"},
    "viewer": {"config", "contracts", "infra", "samples", "local_run"},
    "cli": SHARED | MODULES | {"samples", "local_run", "viewer"},
    "bench": SHARED | MODULES | {"samples", "local_run", "viewer", "cli"},
}
TOP_LEVEL = set(ALLOWED)


def packages() -> set[str]:
    """Every top-level package of the repository (the tests are not one of the layers)."""
    found = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests"}
    return found | {"bench"}


def imported(source: str) -> Iterator[str]:
    """The top-level names every absolute import in ``source`` names, wherever it stands."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.partition(".")[0]


def import_graph() -> dict[str, dict[str, set[str]]]:
    """package -> imported package -> the files that import it."""
    graph: dict[str, dict[str, set[str]]] = {}
    for package in sorted(packages()):
        edges = graph.setdefault(package, {})
        for path in sorted((ROOT / package).rglob("*.py")):
            for name in set(imported(path.read_text(encoding="utf-8"))):
                if name != package and (name in TOP_LEVEL or name == "tests"):
                    edges.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    return graph


def find_cycle(graph: Mapping[str, Mapping[str, object]]) -> list[str] | None:
    """One cycle of the graph as the packages around it (first repeated last), or None."""
    done: set[str] = set()

    def visit(node: str, path: list[str]) -> list[str] | None:
        if node in path:
            return path[path.index(node):] + [node]
        if node in done:
            return None
        for target in sorted(graph.get(node, {})):
            cycle = visit(target, [*path, node])
            if cycle:
                return cycle
        done.add(node)
        return None

    for start in sorted(graph):
        cycle = visit(start, [])
        if cycle:
            return cycle
    return None


def test_every_top_level_package_has_a_row() -> None:
    assert packages() == TOP_LEVEL


def test_the_allowed_table_itself_has_no_cycle() -> None:
    assert find_cycle(ALLOWED) is None


def test_no_import_cycle_between_packages() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, " -> ".join(cycle or [])


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_each_package_imports_only_the_layers_it_may(package: str) -> None:
    edges = import_graph()[package]
    extra = {name: sorted(files) for name, files in edges.items()
             if name not in ALLOWED[package]}
    assert not extra, f"{package} may import only {sorted(ALLOWED[package])}; found {extra}"


def test_the_cycle_finder_finds_a_cycle_through_a_function_level_import() -> None:
    source = "def later() -> None:\n    from local_run.demo import run_demo\n"
    graph = {"local_run": {"config": {}}, "config": dict.fromkeys(imported(source), {})}
    assert find_cycle(graph) == ["config", "local_run", "config"]
