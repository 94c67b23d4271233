"""The tree-walk benchmark times only walks whose sums equal scikit-learn's, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.bench_trees import BASELINE, contenders, fitted, measure, table


@pytest.fixture(scope="module")
def model():
    return fitted(train_rows=3000, rows=2000)


def test_every_contender_is_timed_in_every_round(model):
    estimator, X = model
    times = measure(contenders(estimator, numpy_walk=True), X, repeat=2)
    assert set(times) == {BASELINE, "compiled kernel", "numpy walk"}
    assert all(len(t["cpu"]) == len(t["wall"]) == 2 for t in times.values())
    lines = table(times, len(X))
    assert len(lines) == 2 + 3 and lines[2].startswith(f"| {BASELINE} |")
    assert lines[2].endswith("| 1.00x |")


def test_a_walk_with_other_sums_is_refused(model):
    estimator, X = model
    walks = contenders(estimator, numpy_walk=False)
    walks["off by one ulp"] = lambda rows: np.nextafter(estimator._raw_predict(rows), np.inf)
    with pytest.raises(AssertionError, match="off by one ulp"):
        measure(walks, X, repeat=1)
