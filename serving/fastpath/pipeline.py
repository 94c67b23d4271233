"""The whole pipeline: branches, the shared steps after them, and the estimator."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from serving.fastpath.branches import Branch, compile_branch, compile_column_transformer
from serving.fastpath.common import FLOAT, Declined, Output, Step, Unsupported, class_name
from serving.fastpath.steps import compile_steps, flat_steps
from serving.fastpath.trees import BOOSTED, AnyEstimator, BoostedTrees


@dataclass(frozen=True)
class FastPipeline:
    """A fitted pipeline compiled into branches, shared steps after them, and the estimator."""

    branches: tuple[Branch, ...]
    after: tuple[Step, ...]
    estimator: BoostedTrees | AnyEstimator

    @property
    def categories(self) -> dict[int, tuple[str, ...]]:
        """The categories each text feature's encoder knows, by feature position."""
        return {p: c for branch in self.branches for p, c in branch.categories.items()}

    def transform(self, columns: Sequence[Any], n_rows: int) -> np.ndarray:
        parts = [branch.run(columns, n_rows) for branch in self.branches]
        X = parts[0] if len(parts) == 1 else np.hstack(parts)
        for step in self.after:
            X = step(X)
        return X

    def run(self, columns: Sequence[Any], n_rows: int, probabilities: bool) -> Output | None:
        """Predictions (and class probabilities if asked) for the coerced columns, in
        feature order; None when this request must take the plain pipeline."""
        try:
            return self.estimator.predict(self.transform(columns, n_rows), probabilities)
        except Declined:
            return None


def compile_pipeline(model: Any, names: Sequence[str], dtypes: Sequence[str]) -> FastPipeline:
    """Read a fitted pipeline (or bare estimator) whose input is the manifest's features.

    Raises:
        Unsupported: the pipeline holds something this module does not reproduce, or a fitted
            attribute it reads is not there (another scikit-learn version); the message says
            what.
    """
    try:
        return _compile(model, names, dtypes)
    except (AttributeError, KeyError, IndexError, TypeError, ValueError) as exc:
        raise Unsupported(f"reading the fitted pipeline failed: {exc!r}") from exc


def _compile(model: Any, names: Sequence[str], dtypes: Sequence[str]) -> FastPipeline:
    *pre, last = flat_steps(model)
    first = pre[0] if pre else last
    if class_name(first) == "sklearn.compose._column_transformer.ColumnTransformer":
        branches = compile_column_transformer(pre[0], names, dtypes)
        after, kind = compile_steps(pre[1:], FLOAT)
    else:
        first_names = getattr(first, "feature_names_in_", None)
        if first_names is not None and list(first_names) != list(names):
            raise Unsupported("the pipeline was fitted on other columns than the manifest's")
        branches = [compile_branch(pre, range(len(names)), dtypes)]
        after, kind = [], FLOAT
    if not branches or kind != FLOAT:
        raise Unsupported("no columns reach the estimator as numbers")
    estimator = BoostedTrees(last) if class_name(last) in BOOSTED else AnyEstimator(last)
    return FastPipeline(tuple(branches), tuple(after), estimator)
