"""Drift per column: Evidently's method choice and scores, on every row, with clear errors.

The kernels are checked against Evidently's own stattests, the method choice against its
``_get_default_stattest``, and whole verdicts against its DataDriftPreset read through the
typed helper.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlops.core.errors import DataValidationError, SpecError
from mlops.drift.compute import compute_drift, drift_columns
from mlops.drift.methods import KERNELS, default_method
from mlops.drift.report import evidently_report
from mlops.drift.scores import jensenshannon_counts, wasserstein_normed
from tests.mlops._frames import churn_spec, diabetes_spec
from tools.datasets import make_churn

DRIFTED = {"age": 1.0, "monthly_charges": 0.5, "region": 1.0, "contract": 0.6}


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return make_churn(3000, seed=21)


@pytest.fixture(scope="module")
def drifted() -> pd.DataFrame:
    return make_churn(3000, seed=22, drift=DRIFTED)


def _evidently(name: str, ref: pd.Series, cur: pd.Series, kind: str):
    from evidently.legacy.calculations.stattests.registry import get_registered_stattest
    from evidently.legacy.core import ColumnType

    return get_registered_stattest(name, ColumnType(kind))(ref, cur, ColumnType(kind), None)


@pytest.mark.parametrize("shape", ["normal", "ties", "unequal", "shifted", "constant"])
def test_wasserstein_equals_evidentlys(shape):
    rng = np.random.default_rng(5)
    ref, cur = rng.normal(3, 2, 4000), rng.normal(3, 2, 2500)
    if shape == "ties":
        ref, cur = np.round(ref), np.round(cur + 0.3)
    elif shape == "unequal":
        cur = rng.gamma(2, 1.5, 777)
    elif shape == "shifted":
        cur = cur * 1.3 + 1
    elif shape == "constant":
        ref, cur = np.full(2000, 4.0), np.r_[np.full(1500, 4.0), np.full(10, 5.0)]
    ours = wasserstein_normed(np.sort(ref), np.sort(cur))
    theirs = _evidently("wasserstein", pd.Series(ref), pd.Series(cur), "num")
    assert ours == pytest.approx(theirs.drift_score, rel=1e-12, abs=1e-15)


def test_jensenshannon_equals_evidentlys_with_new_and_missing_levels():
    ref = pd.Series(["a"] * 500 + ["b"] * 300 + ["c"] * 200)
    cur = pd.Series(["a"] * 200 + ["b"] * 300 + ["new"] * 100)
    ours = jensenshannon_counts(ref.value_counts().to_dict(), cur.value_counts().to_dict())
    theirs = _evidently("jensenshannon", ref, cur, "cat")
    assert ours == pytest.approx(theirs.drift_score, rel=1e-12)


@pytest.mark.parametrize(("kind", "name"), list(KERNELS))
def test_the_kernels_carry_evidentlys_name_label_and_threshold(kind, name):
    from evidently.legacy.calculations.stattests.registry import get_registered_stattest
    from evidently.legacy.core import ColumnType

    theirs = get_registered_stattest(name, ColumnType(kind))
    ours = KERNELS[(kind, name)]
    assert (ours.name, ours.display_name, ours.default_threshold) == (
        theirs.name, theirs.display_name, theirs.default_threshold)


@pytest.mark.parametrize("rows", [300, 1000, 1001, 5000])
@pytest.mark.parametrize("kind", ["num", "cat"])
@pytest.mark.parametrize("distinct", [2, 3, 5, 6, 40])
def test_method_choice_is_evidentlys(rows, kind, distinct):
    from evidently.legacy.calculations.stattests.registry import _get_default_stattest
    from evidently.legacy.core import ColumnType

    values = np.arange(rows) % distinct
    ref = pd.Series(values if kind == "num" else values.astype(str))
    cur = ref.iloc[: rows // 2]
    expected = _get_default_stattest(ref, cur, ColumnType(kind)).name
    assert default_method(kind, rows, distinct) == expected


def test_no_drift_between_samples_of_one_population(reference):
    result = compute_drift(reference, make_churn(3000, seed=23), churn_spec())
    assert result.drifted_columns == []
    assert not result.dataset_drift
    assert {c.method for c in result.columns} == {"wasserstein", "jensenshannon"}


def test_injected_drift_is_found_in_exactly_those_columns(reference, drifted):
    result = compute_drift(reference, drifted, churn_spec())
    assert sorted(result.drifted_columns) == sorted(DRIFTED)
    assert result.summary == "4 of 13 columns drifted (share 0.31 < 0.5)"
    lowered = compute_drift(reference, drifted, churn_spec({"drift.drift_share": 0.3}))
    assert lowered.dataset_drift
    assert lowered.summary == "4 of 13 columns drifted (share 0.31 >= 0.3)"


def test_verdicts_equal_evidentlys_data_drift_preset(reference, drifted):
    """The full preset on all rows (3000 per side), read through the typed helper."""
    result = compute_drift(reference, drifted, churn_spec())
    _, sample = evidently_report(
        _arrow(reference), _arrow(drifted), result, rows=10_000
    )
    assert (sample.reference_rows, sample.current_rows) == (3000, 3000)
    theirs = sample.verdicts
    for column in result.columns:
        seen = theirs.columns[column.column]
        assert seen.drifted == column.drifted, column
        assert seen.score == pytest.approx(column.score, rel=1e-9, abs=1e-12), column
        assert seen.threshold == column.threshold
    assert theirs.drifted_count == len(result.drifted_columns)


def _arrow(frame):
    import pyarrow as pa

    return pa.Table.from_pandas(frame, preserve_index=False)


def test_categorical_drift_new_level_and_shifted_frequencies(reference):
    spec = churn_spec()
    new_level = reference.copy()
    new_level.loc[new_level.index[:600], "internet_service"] = "satellite"
    shifted = reference.copy()
    shifted["contract"] = np.where(
        np.arange(len(shifted)) % 10 < 6, "two-year", shifted["contract"]
    )
    for frame, column in ((new_level, "internet_service"), (shifted, "contract")):
        result = compute_drift(reference, frame, spec)
        assert result.drifted_columns == [column]
        verdict = next(c for c in result.columns if c.column == column)
        assert verdict.method == "jensenshannon" and verdict.score > verdict.threshold


def test_small_reference_uses_evidentlys_p_value_tests():
    spec = diabetes_spec()
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True).frame
    shifted = frame.assign(bmi=frame.bmi + 0.03)
    result = compute_drift(frame, shifted, spec)
    methods = {c.column: c.method for c in result.columns}
    assert methods.pop("sex") == "z"  # two values: Evidently's z-test, even on a number
    assert set(methods.values()) == {"ks"}
    assert result.drifted_columns == ["bmi"]
    assert all(c.threshold == 0.05 for c in result.columns)
    _, sample = evidently_report(_arrow(frame), _arrow(shifted), result, rows=1000)
    for column in result.columns:
        seen = sample.verdicts.columns[column.column]
        assert seen.drifted == column.drifted
        assert seen.score == pytest.approx(column.score, rel=1e-9), column


def test_thresholds_and_methods_per_column_from_the_spec(reference, drifted):
    spec = churn_spec({"drift.thresholds": {"Age": 5.0}, "drift.methods": {"region": "psi"}})
    result = {c.column: c for c in compute_drift(reference, drifted, spec).columns}
    assert result["age"].threshold == 5.0 and not result["age"].drifted
    assert result["region"].method == "psi" and result["region"].drifted


def test_unknown_method_is_a_spec_error(reference):
    spec = churn_spec({"drift.methods": {"age": "no-such-test", "region": "ks"}})
    with pytest.raises(SpecError, match=r"drift.methods.age.*drift.methods.region"):
        compute_drift(reference, reference, spec)


def test_drift_settings_must_name_features():
    with pytest.raises(SpecError, match="not features.*churned"):
        churn_spec({"drift.thresholds": {"churned": 0.2}})


def test_missing_empty_and_mistyped_columns_are_all_reported(reference):
    spec = churn_spec()
    current = reference.drop(columns=["age", "region"])
    with pytest.raises(DataValidationError, match=r"current data lacks \['age', 'region'\]"):
        compute_drift(reference, current, spec)
    broken = reference.assign(tenure_months="12", monthly_charges=np.nan)
    with pytest.raises(DataValidationError) as info:
        compute_drift(reference, broken, spec)
    message = str(info.value)
    assert "'tenure_months' in the current data is large_string, expected numbers" in message
    assert "'monthly_charges' has no values in the current data" in message


def test_datetime_features_are_left_out_like_evidentlys_preset():
    spec = churn_spec()
    names = [c.name for c in drift_columns(spec)]
    assert "signup_date" not in names and "customer_id" not in names and "churned" not in names
    assert len(names) == 13


def test_worker_threads_give_the_same_verdicts(reference, drifted):
    spec = churn_spec()
    assert compute_drift(reference, drifted, spec, workers=1) == compute_drift(
        reference, drifted, spec, workers=3
    )


@pytest.mark.parametrize(
    ("column", "method"), [("age", "wasserstein"), ("region", "jensenshannon")]
)
def test_a_score_exactly_at_its_threshold_is_drift(reference, drifted, column, method):
    """Evidently counts a distance equal to its threshold as drift; so do our kernels."""
    first = {c.column: c for c in compute_drift(reference, drifted, churn_spec()).columns}
    score = first[column].score
    assert first[column].method == method
    at = churn_spec({"drift.thresholds": {column: score}})
    verdict = {c.column: c for c in compute_drift(reference, drifted, at).columns}[column]
    assert verdict.score == score and verdict.threshold == score
    assert verdict.drifted
    above = churn_spec({"drift.thresholds": {column: float(np.nextafter(score, np.inf))}})
    assert not {c.column: c for c in compute_drift(reference, drifted, above).columns}[
        column].drifted
