"""Label drift (mlops/evaluation/label_drift.py): the target judged by the drift check's
methods."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from mlops.core.errors import DataValidationError
from mlops.drift.compute import judge_column
from mlops.evaluation.label_drift import describe, label_drift, target_column
from tests.mlops._frames import churn_spec, diabetes_frame, diabetes_spec
from tools.datasets import make_churn


@pytest.fixture(scope="module")
def reference() -> pa.Table:
    return pa.table({"churned": make_churn(3000, seed=21)["churned"].to_numpy()})


def _target(values) -> pa.Table:
    return pa.table({"churned": np.asarray(values)})


def _flip(values: np.ndarray, share: float, seed: int = 0) -> np.ndarray:
    flip = np.random.default_rng(seed).random(len(values)) < share
    return np.where(flip, 1 - values, values)


def test_a_classifiers_target_is_judged_as_a_category():
    assert target_column(churn_spec()).kind == "cat"
    assert target_column(diabetes_spec()).kind == "num"


def test_new_rows_of_the_same_population_do_not_drift(reference):
    current = _target(make_churn(2000, seed=22)["churned"].to_numpy())
    verdict = label_drift(reference, current, churn_spec())
    assert verdict.method == "jensenshannon" and not verdict.drifted


def test_inverted_labels_drift(reference):
    current = _target(1 - make_churn(2000, seed=22)["churned"].to_numpy())
    verdict = label_drift(reference, current, churn_spec())
    assert verdict.drifted and verdict.score >= verdict.threshold == 0.1
    assert describe(verdict).startswith("Jensen-Shannon distance")
    assert f">= threshold {verdict.threshold:g}" in describe(verdict)


def test_partly_flipped_labels_drift(reference):
    current = _target(_flip(make_churn(2000, seed=22)["churned"].to_numpy(), 0.3))
    assert label_drift(reference, current, churn_spec()).drifted


def test_shuffled_labels_keep_their_distribution(reference):
    """Shuffling moves no label distribution: the minimum and trusted holdout catch it."""
    values = make_churn(2000, seed=22)["churned"].to_numpy()
    current = _target(np.random.default_rng(0).permutation(values))
    assert not label_drift(reference, current, churn_spec()).drifted


def test_the_spec_threshold_replaces_the_default_and_equality_is_drift(reference):
    current = _target(_flip(make_churn(2000, seed=22)["churned"].to_numpy(), 0.05))
    score = label_drift(reference, current, churn_spec()).score
    at = label_drift(reference, current, churn_spec({"evaluation.label_drift_threshold": score}))
    assert at.threshold == score and at.drifted
    above = float(np.nextafter(score, np.inf))
    spec = churn_spec({"evaluation.label_drift_threshold": above})
    assert not label_drift(reference, current, spec).drifted


def test_a_regression_target_uses_a_numeric_test():
    spec = diabetes_spec()
    frame = diabetes_frame()
    reference = pa.table({"target": frame["target"].to_numpy()[:300]})
    shifted = pa.table({"target": frame["target"].to_numpy()[300:] + 80.0})
    verdict = label_drift(reference, shifted, spec)
    assert verdict.method == "ks" and verdict.drifted  # a p-value below 0.05
    assert "< threshold 0.05" in describe(verdict)


def test_a_target_without_values_is_reported():
    with pytest.raises(DataValidationError, match="'churned' has no values in the current"):
        judge_column(target_column(churn_spec()), _target([0, 1, 1]),
                     pa.table({"churned": pa.array([None, None], type=pa.int64())}), churn_spec())


_NO_EVIDENTLY = """
import sys
import pyarrow as pa
from mlops.evaluation.label_drift import label_drift
from tests.mlops._frames import churn_spec
from tools.datasets import make_churn
reference = pa.table({"churned": make_churn(3000, seed=21)["churned"].to_numpy()})
current = pa.table({"churned": 1 - make_churn(2000, seed=22)["churned"].to_numpy()})
verdict = label_drift(reference, current, churn_spec())
print(verdict.method, verdict.drifted, any(m.startswith("evidently") for m in sys.modules))
"""


def test_judging_a_large_reference_imports_no_evidently():
    """The training flow's label-drift gate on a 5,000-row reference pays no Evidently import
    (about 4 s): its default method is computed here."""
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    from tests.conftest import ROOT  # noqa: PLC0415

    done = subprocess.run([sys.executable, "-c", _NO_EVIDENTLY], capture_output=True, text=True,
                          cwd=ROOT, timeout=120, check=True)
    assert done.stdout.split() == ["jensenshannon", "True", "False"]
