"""The compiled tree kernel sums exactly as scikit-learn, and only batches reach it."""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

from serving.fastpath import compiled, trees

FEATURES = 5


def _data(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, FEATURES)) * 2
    score = X[:, 0] + np.sin(X[:, 1]) * X[:, 2] - 0.5 * X[:, 3]
    X[rng.random(X.shape) < 0.15] = np.nan  # learnt both ways: missing left and right
    return X, score + rng.normal(size=rows) * 0.3


def _fit(kind: str) -> Any:
    X, y = _data(3000, seed=1)
    params = {"max_iter": 30, "max_leaf_nodes": 63, "min_samples_leaf": 5, "random_state": 0}
    if kind == "regressor":
        return HistGradientBoostingRegressor(**params).fit(X, y)
    labels = (y > 0.5) if kind == "binary" else np.digitize(y, [-1.0, 1.0])
    return HistGradientBoostingClassifier(**params).fit(X, labels)


@pytest.fixture(scope="module", params=["binary", "three classes", "regressor"])
def estimator(request: pytest.FixtureRequest) -> Any:
    return _fit(request.param)


def _rows(n: int, seed: int) -> np.ndarray:
    X, _ = _data(n, seed)
    rng = np.random.default_rng(seed + 1)
    X[rng.random(X.shape) < 0.02] = np.inf
    X[rng.random(X.shape) < 0.02] = -np.inf
    return X


class Spy:
    """Counts the rows that went through the compiled kernel."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.rows = 0
        add_leaves = compiled.Tables.add_leaves

        def counted(tables: compiled.Tables, X: np.ndarray, raw: np.ndarray) -> None:
            self.rows += X.shape[0]
            add_leaves(tables, X, raw)

        monkeypatch.setattr(compiled.Tables, "add_leaves", counted)


def test_the_models_learnt_both_missing_directions(estimator):
    nodes = np.concatenate([p.nodes for it in estimator._predictors for p in it])
    splits = nodes[nodes["is_leaf"] == 0]
    assert set(splits["missing_go_to_left"]) == {0, 1}
    assert nodes["depth"].max() >= 8


@pytest.mark.parametrize("rows", [1, 7, 8, 9, 1023, 1024, 1025, 3001])
def test_kernel_sums_are_bit_identical_to_scikit_learn(estimator, rows, monkeypatch):
    monkeypatch.setattr(trees, "COMPILED_MIN_ROWS", 1)
    spy = Spy(monkeypatch)
    X = _rows(rows, seed=rows)
    got = trees.Forest(estimator).raw(X)
    assert spy.rows == rows
    assert got.tobytes() == estimator._raw_predict(X).tobytes()
    out = trees.BoostedTrees(estimator).predict(X, probabilities=True)
    np.testing.assert_array_equal(out[0], estimator.predict(X))
    if out[1] is not None:
        assert out[1].tobytes() == estimator.predict_proba(X).tobytes()


def test_only_batch_sized_row_counts_use_the_kernel(monkeypatch):
    estimator = _fit("binary")
    forest = trees.Forest(estimator)
    spy = Spy(monkeypatch)
    X = _rows(trees.COMPILED_MIN_ROWS, seed=5)
    assert forest.raw(X[:-1]).tobytes() == estimator._raw_predict(X[:-1]).tobytes()
    assert spy.rows == 0
    assert forest.raw(X).tobytes() == estimator._raw_predict(X).tobytes()
    assert spy.rows == trees.COMPILED_MIN_ROWS
    assert trees.WALK_MAX_ROWS < trees.COMPILED_MIN_ROWS <= 100_000


def test_without_numba_large_batches_use_scikit_learns_predictors(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "numba" else real(name, *a))
    trees.compiled_kernel.cache_clear()
    monkeypatch.setattr(trees, "COMPILED_MIN_ROWS", 1)
    spy = Spy(monkeypatch)
    try:
        estimator = _fit("three classes")
        forest = trees.Forest(estimator)
        X = _rows(500, seed=6)
        assert forest.raw(X).tobytes() == estimator._raw_predict(X).tobytes()
        assert forest._tables is None
        assert spy.rows == 0
    finally:
        trees.compiled_kernel.cache_clear()


def test_preparing_builds_the_tables_before_the_first_batch(monkeypatch):
    forest = trees.Forest(_fit("regressor"))
    assert "_tables" not in vars(forest)  # the endpoint's forests never build them
    forest.prepare_compiled()
    assert isinstance(vars(forest)["_tables"], compiled.Tables)


def test_the_kernel_wants_fortran_ordered_sums():
    tables = trees.Forest(_fit("binary"))._tables
    with pytest.raises(ValueError, match="Fortran order"):
        tables.add_leaves(np.zeros((3, FEATURES)), np.zeros((3, 2)))
