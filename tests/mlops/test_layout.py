"""The library's layout rules: tasks reach each other's results through `mlops.model.results`,
and no library module grows past about 400 lines (one idea per file)."""

from __future__ import annotations

import ast

import pytest

from tests.conftest import ROOT

MAX_LINES = 400
# Tooling that leaves the library (issue 13's tooling helper moves them out).
LEAVING = {"tools/stack.py", "tools/datasets.py"}


def _imported_modules(path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


@pytest.mark.parametrize("path", sorted((ROOT / "tasks").glob("[!_]*.py")), ids=lambda p: p.name)
def test_a_task_module_imports_no_other_stage(path):
    stages = {f"tasks.{p.stem}" for p in (ROOT / "tasks").glob("[!_]*.py")} - {f"tasks.{path.stem}"}
    assert _imported_modules(path) & stages == set()


def test_no_library_module_is_over_the_limit():
    sizes = {
        p.relative_to(ROOT).as_posix(): len(p.read_text().splitlines())
        for p in (ROOT / "mlops").rglob("*.py")
    }
    over = {p: n for p, n in sizes.items() if n > MAX_LINES and p not in LEAVING}
    assert over == {}
