"""Tools sit on top: nothing in the library, serving, tasks or flows imports them."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BELOW_TOOLS = ("mlops", "serving", "tasks", "flows")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def test_nothing_below_tools_imports_them():
    offenders = [
        f"{path.relative_to(ROOT)}: {name}"
        for package in BELOW_TOOLS
        for path in sorted((ROOT / package).rglob("*.py"))
        for name in _imports(path)
        if name == "tools" or name.startswith("tools.")
    ]
    assert offenders == []


def test_the_check_sees_an_import_of_tools(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from tools.stack import up  # noqa\n")
    assert "tools.stack" in _imports(module)
