"""Code behaviour: the module map. Which library module may import which, what the stages import, and
what the scoring path pulls in. A new edge fails here until the table says it is a decision."""

from __future__ import annotations

import ast
import functools
import subprocess
import sys
from pathlib import Path

import yaml
from conftest import ROOT

LIBRARY = ROOT / "src" / "churnlab"
STAGES = ROOT / "nbs" / "stages"

# module -> the churnlab modules it may import (at the top or inside a function)
ALLOWED = {
    "config": set(),
    "files": {"config"},
    "structures": set(),
    "data": {"files", "structures"},
    "roles": {"data", "structures"},
    "splits": {"data", "roles", "structures"},
    "features": {"data", "splits", "structures"},
    "nn": set(),
    "boosting": set(),
    "models": {"boosting", "features", "files", "nn", "structures"},
    "treeshap": set(),
    "explain": {"models", "treeshap"},
    "ensemble": {"models", "structures"},
    "selection": {"data", "ensemble", "features", "models", "splits", "structures"},
    "evaluate": {"structures"},
    "track": {"config", "files"},
    "tune": {"models", "selection", "structures"},
    "trust": {"config", "data", "files", "models", "track"},
    "pyfunc": {"models", "scoring", "structures"},
    "scoring": {"data", "structures"},
    "schema": {"structures"},
    "predlog": set(),
    "observability": set(),
    "served": {"data", "explain", "models", "schema", "scoring", "structures", "trust"},
    "shadow": set(),
    "serve": {"config", "observability", "predlog", "schema", "served", "shadow", "structures", "track", "trust"},
    "drift": {"structures"},
    "estimate": set(),
    "monitor": {"drift", "estimate", "evaluate", "files", "structures"},
    "sinks": set(),
    "plots": {"drift"},
    "workflow": {
        "config",
        "data",
        "features",
        "files",
        "models",
        "roles",
        "selection",
        "splits",
        "structures",
        "track",
        "tune",
    },
    "registry": {"evaluate", "models", "pyfunc", "splits", "structures", "track", "trust"},
    "windows": {
        "config",
        "data",
        "drift",
        "files",
        "models",
        "monitor",
        "predlog",
        "sinks",
        "structures",
        "track",
        "trust",
    },
    "cli": {
        "config",
        "data",
        "explain",
        "files",
        "models",
        "monitor",
        "plots",
        "scoring",
        "serve",
        "sinks",
        "structures",
        "track",
        "trust",
        "tune",
        "windows",
        "workflow",
    },
}


def churnlab_imports(path: Path) -> set[str]:
    "The churnlab modules a file imports, anywhere in it (`from . import x`, `from churnlab.x import y`, ...)."
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            module = ("churnlab" if node.level else "") + (
                "." + node.module if node.level and node.module else node.module or ""
            )
            if module == "churnlab":
                found |= {alias.name for alias in node.names}
            elif module.startswith("churnlab."):
                found.add(module.split(".")[1])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("churnlab.")}
    return found


def library_modules() -> dict[str, Path]:
    return {p.stem: p for p in sorted(LIBRARY.glob("*.py")) if not p.stem.startswith("_")}


@functools.cache
def library_edges() -> dict[str, frozenset[str]]:
    "Each library module's churnlab imports (itself left out), read once per test session."
    return {name: frozenset(churnlab_imports(path) - {name}) for name, path in library_modules().items()}


def test_every_library_module_is_in_the_table():
    assert set(library_modules()) == set(ALLOWED), "a new module needs its row in ALLOWED"


def test_library_imports_follow_the_table():
    edges = library_edges()
    extra = {name: sorted(found - ALLOWED[name]) for name, found in edges.items() if found - ALLOWED[name]}
    unused = {name: sorted(ALLOWED[name] - found) for name, found in edges.items() if ALLOWED[name] - found}
    assert not extra, f"imports outside the module map (add them to ALLOWED only as a decision): {extra}"
    assert not unused, f"edges in ALLOWED that no longer exist (remove them): {unused}"


def test_no_stage_imports_the_cli_service_or_monitoring_code_it_does_not_run():
    for path in sorted(STAGES.glob("*.py")):
        found = churnlab_imports(path)
        assert "cli" not in found and "serve" not in found, f"{path.name} imports {sorted(found)}"
        if path.stem != "monitor":
            assert not found & {"drift", "monitor", "sinks", "plots"}, f"{path.name} imports the monitoring code"


def test_no_module_over_400_lines_and_no_function_over_60():
    long_modules, long_functions = [], []
    for name, path in library_modules().items():
        text = path.read_text()
        if len(text.splitlines()) > 400:
            long_modules.append(name)
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.end_lineno - node.lineno >= 60:
                long_functions.append(f"{name}.{node.name} ({node.end_lineno - node.lineno + 1})")
    assert not long_functions, long_functions
    assert not long_modules, f"modules over 400 lines (split them by job): {long_modules}"


def imported_modules(statement: str) -> set[str]:
    "Top-level packages Python imports for `statement` (`-X importtime`), in a fresh interpreter."
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", statement], capture_output=True, text=True, check=True, cwd=ROOT
    )
    names = [line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")]
    return {n.split(".")[0] for n in names}


def test_the_scoring_path_imports_no_web_stack():
    for module in ("churnlab.scoring", "churnlab.trust", "churnlab.cli"):
        found = imported_modules(f"import {module}")
        assert "churnlab" in found
        assert not found & {"fastapi", "pydantic", "starlette", "uvicorn"}, (module, found & {"fastapi", "pydantic"})
    assert {"fastapi", "pydantic"} <= imported_modules("import churnlab.serve")  # the check can fail


def closure(modules: set[str]) -> set[str]:
    "The modules `modules` import, directly or through each other."
    edges = library_edges()
    seen, todo = set(), list(modules)
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(edges.get(name, ()))
    return seen


def test_each_stage_depends_on_exactly_the_library_files_it_imports():
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        notebook = STAGES / f"{name}.py"
        if not notebook.exists():
            continue
        needed = {f"src/churnlab/{m}.py" for m in closure(churnlab_imports(notebook))}
        declared = {d for d in stage["deps"] if d.startswith("src/churnlab/")}
        assert declared == needed, (name, {"missing": sorted(needed - declared), "stale": sorted(declared - needed)})
