"""The spec's model sections: feature preprocessing and the estimator, checked importable
without importing it.
"""

from __future__ import annotations

import ast
import importlib
import importlib.machinery
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from mlops.core.errors import SpecError
from mlops.core.spec.columns import _Strict


class NumericFeatures(_Strict):
    impute: Literal["mean", "median", "most_frequent", "constant"] = "median"
    scale: Literal["standard", "minmax", "robust", "none"] = "standard"


class CategoricalFeatures(_Strict):
    impute: Literal["most_frequent", "constant"] = "constant"
    encode: Literal["onehot", "ordinal"] = "onehot"
    max_categories: int | None = Field(30, ge=2)
    min_frequency: float | int | None = None


class FeatureSpec(_Strict):
    numeric: NumericFeatures = Field(default_factory=NumericFeatures)
    categorical: CategoricalFeatures = Field(default_factory=CategoricalFeatures)


class ModelSpec(_Strict):
    estimator: str = Field(description="Import path of a scikit-learn compatible estimator.")
    params: dict[str, Any] = Field(default_factory=dict)

    def estimator_class(self) -> type:
        module_name, _, class_name = self.estimator.rpartition(".")
        try:
            cls = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError, ValueError) as exc:
            raise SpecError(f"model.estimator: cannot import '{self.estimator}': {exc}") from exc
        if not (hasattr(cls, "fit") and hasattr(cls, "predict")):
            raise SpecError(f"model.estimator: '{self.estimator}' has no fit/predict")
        return cls

    def check_estimator_path(self) -> None:
        """Fail now if the estimator's import path cannot exist, without importing it.

        Importing scikit-learn takes 1-2 s, which a run that finds every stage cached should
        not pay just to check the spec. The module is looked up on the import path (its parents
        are not imported) and, when it is plain Python, its source is searched for the name.
        Whatever this cannot decide is left to `estimator_class`, the full import.

        Raises:
            SpecError: no such module, or a module whose source surely binds no such name.
        """
        module_name, _, class_name = self.estimator.rpartition(".")
        problem = "no module path" if not module_name else None
        if module_name and (module := _find_module(module_name)) is None:
            problem = f"No module named '{module_name}'"
        elif module_name and _binds(module, class_name) is False:
            problem = f"module '{module_name}' has no attribute '{class_name}'"
        if problem:
            raise SpecError(f"model.estimator: cannot import '{self.estimator}': {problem}")


def _find_module(name: str) -> importlib.machinery.ModuleSpec | None:
    """Where a module would be imported from, without importing it or its parent packages."""
    if name in sys.modules:
        return getattr(sys.modules[name], "__spec__", None) or importlib.util.find_spec(name)
    top, *parts = name.split(".")
    try:
        found = importlib.util.find_spec(top)
        for i, _ in enumerate(parts, start=1):
            if found is None or found.submodule_search_locations is None:
                return None
            found = importlib.machinery.PathFinder.find_spec(
                ".".join([top, *parts[:i]]), list(found.submodule_search_locations)
            )
    except (ImportError, ValueError):
        return None
    return found


def _binds(module: importlib.machinery.ModuleSpec, name: str) -> bool | None:
    """Whether the module's source binds `name` at its top level; None when the source cannot
    tell (no Python source, a star import, a module-level `__getattr__`)."""
    if not (module.origin or "").endswith(".py"):
        return None
    try:
        tree = ast.parse(Path(module.origin).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return None
    bound: set[str] = set()
    for node in _top_level(tree.body):
        if isinstance(node, ast.ImportFrom | ast.Import):
            if any(alias.name == "*" for alias in node.names):
                return None
            bound.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            bound.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            bound.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
    return None if "__getattr__" in bound else name in bound


def _top_level(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Statements that run when the module is imported, including inside if/try/with blocks."""
    for node in body:
        yield node
        if isinstance(node, ast.If | ast.Try | ast.TryStar | ast.With | ast.For | ast.While):
            for block in ("body", "orelse", "finalbody"):
                yield from _top_level(getattr(node, block, []))
            for handler in getattr(node, "handlers", []):
                yield from _top_level(handler.body)
