"""Every validation rule at its boundary: the last value that passes and the first that fails.

Each case is one column `v` (plus a complete binary target `y`) over ten rows; a case fails
if its rule is removed (the failing side passes) or its boundary moves (the passing side
fails).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlops.core.errors import DataValidationError
from mlops.core.spec import PipelineSpec
from mlops.data.validation import BatchValidator, validate_frame

ROWS = 10


def _spec(column: dict[str, Any], **data: Any) -> PipelineSpec:
    return PipelineSpec.model_validate({
        "name": "rules",
        "data": {"url": "unused", **data},
        "target": "y",
        "task": "classification",
        "columns": [{"name": "v", **column}, {"name": "y", "dtype": "int"}],
        "min_rows": ROWS,
        "model": {"estimator": "sklearn.linear_model.LogisticRegression"},
        "evaluation": {"primary_metric": "roc_auc"},
    })


def _frame(values: list[Any]) -> pd.DataFrame:
    """`values` padded to ten rows with its first value."""
    values = [*values, *[values[0]] * (ROWS - len(values))]
    return pd.DataFrame({"v": pd.Series(values, dtype="object"), "y": [0, 1] * (ROWS // 2)})


NAN, INF = float("nan"), float("inf")
INT = {"dtype": "int"}
FLOAT = {"dtype": "float"}

# name: (column spec, data options, values, the rule the failing side breaks or None to pass)
CASES: dict[str, tuple[dict, dict, list, str | None]] = {
    "int-min-edge-passes": ({**INT, "rules": {"min": 0}}, {}, [0], None),
    "int-below-min-fails": ({**INT, "rules": {"min": 0}}, {}, [1, -1],
                            "greater_than_or_equal_to(0"),
    "int-max-edge-passes": ({**INT, "rules": {"max": 9}}, {}, [9], None),
    "int-above-max-fails": ({**INT, "rules": {"max": 9}}, {}, [1, 10], "less_than_or_equal_to(9"),
    "float-min-edge-passes": ({**FLOAT, "rules": {"min": 0.5}}, {}, [0.5], None),
    "float-below-min-fails": (
        {**FLOAT, "rules": {"min": 0.5}}, {}, [1.0, np.nextafter(0.5, 0)],
        "greater_than_or_equal_to(0.5"),
    "float-max-edge-passes": ({**FLOAT, "rules": {"max": 2.5}}, {}, [2.5], None),
    "float-above-max-fails": (
        {**FLOAT, "rules": {"max": 2.5}}, {}, [1.0, np.nextafter(2.5, 3)],
        "less_than_or_equal_to(2.5"),
    # allowed values, for every dtype that can carry them
    "int-allowed-passes": ({**INT, "rules": {"allowed": [1, 2]}}, {}, [1, 2], None),
    "int-not-allowed-fails": ({**INT, "rules": {"allowed": [1, 2]}}, {}, [1, 3], "isin("),
    "float-allowed-passes": ({**FLOAT, "rules": {"allowed": [0.5, 1.5]}}, {}, [0.5, 1.5], None),
    "float-not-allowed-fails": ({**FLOAT, "rules": {"allowed": [0.5, 1.5]}}, {}, [0.5, 1.0],
                                "isin("),
    "category-allowed-passes": ({"dtype": "category", "rules": {"allowed": ["a", "b"]}}, {},
                                ["a", "b"], None),
    "category-not-allowed-fails": ({"dtype": "category", "rules": {"allowed": ["a", "b"]}}, {},
                                   ["a", "A"], "isin("),
    "string-allowed-passes": ({"dtype": "string", "rules": {"allowed": ["x"]}}, {}, ["x"], None),
    "string-not-allowed-fails": ({"dtype": "string", "rules": {"allowed": ["x"]}}, {},
                                 ["x", "x "], "isin("),
    "bool-allowed-passes": ({"dtype": "bool", "rules": {"allowed": [True]}}, {}, [True], None),
    "bool-not-allowed-fails": ({"dtype": "bool", "rules": {"allowed": [True]}}, {},
                               [True, False], "isin("),
    # nulls: none by default; a share up to the limit (inclusive); never the whole column
    "no-null-allowed-fails": (FLOAT, {}, [1.0, NAN], "not_nullable"),
    "null-share-at-limit-passes": ({**FLOAT, "rules": {"max_null_fraction": 0.2}}, {},
                                   [1.0, NAN, NAN], None),
    "null-share-over-limit-fails": ({**FLOAT, "rules": {"max_null_fraction": 0.2}}, {},
                                    [1.0, NAN, NAN, NAN], "max_null_fraction(0.2)"),
    "int-null-share-at-limit-passes": ({**INT, "rules": {"max_null_fraction": 0.1}}, {},
                                       [1, None], None),
    "int-null-share-over-limit-fails": ({**INT, "rules": {"max_null_fraction": 0.1}}, {},
                                        [1, None, None], "max_null_fraction(0.1)"),
    "all-nulls-allowed-share-passes": ({**FLOAT, "rules": {"max_null_fraction": 1.0}}, {},
                                       [1.0, *[NAN] * 9], None),
    "entirely-null-fails": ({**FLOAT, "rules": {"max_null_fraction": 1.0}}, {}, [NAN],
                            "not_entirely_null"),
    # infinity: refused in float columns unless the column or the spec allows it
    "inf-with-min-only-fails": ({**FLOAT, "rules": {"min": 0}}, {}, [1.0, INF], "finite"),
    "minus-inf-fails": (FLOAT, {}, [1.0, -INF], "finite"),
    "largest-finite-passes": (FLOAT, {}, [1.0, np.finfo("float64").max], None),
    "inf-allowed-by-column-passes": ({**FLOAT, "rules": {"allow_nonfinite": True}}, {},
                                     [1.0, INF, -INF], None),
    "inf-allowed-by-spec-passes": (FLOAT, {"allow_nonfinite": True}, [1.0, INF], None),
    "inf-refused-by-column-over-spec-fails": (
        {**FLOAT, "rules": {"allow_nonfinite": False}}, {"allow_nonfinite": True}, [1.0, INF],
        "finite"),
    # types
    "int-from-text-fails": (INT, {}, [1, "one"], "coerce_dtype('int64')"),
    "int-from-fraction-fails": (INT, {}, [1, 1.5], "integral"),
    "int-from-whole-float-passes": (INT, {}, [1.0, 2.0], None),
    "nullable-int-from-fraction-fails": ({**INT, "rules": {"max_null_fraction": 0.5}}, {},
                                         [1, None, 2.5], "integral"),
    "bool-from-text-fails": ({"dtype": "bool"}, {}, [True, "maybe"], "coerce_dtype('boolean')"),
    "datetime-one-format-passes": ({"dtype": "datetime"}, {}, ["2024-01-01", "2024-12-31"], None),
    "datetime-mixed-formats-fail": ({"dtype": "datetime"}, {},
                                    ["2024-01-01", "2024-01-02", "03/04/2024"], "coerce_dtype"),
}


@pytest.mark.parametrize(("column", "data", "values", "broken"), CASES.values(), ids=CASES.keys())
def test_rule_boundary(column, data, values, broken) -> None:
    spec = _spec(column, **data)
    if broken is None:
        assert len(validate_frame(_frame(values), spec)) == ROWS
        return
    with pytest.raises(DataValidationError) as info:
        validate_frame(_frame(values), spec)
    message = str(info.value)
    assert f"v: {broken}" in message, message
    assert "broke 1 rule(s)" in message, message


def test_an_integer_column_outside_its_allowed_values_fails() -> None:
    """The allowed-values rule holds for integer columns (the target is the usual one)."""
    spec = _spec({**INT, "rules": {"allowed": [0, 1]}})
    with pytest.raises(DataValidationError, match=r"v: isin\(\[0, 1\]\): 1 bad row, e.g. \[2\]"):
        validate_frame(_frame([0, 1, 2]), spec)


def test_mixed_dates_name_the_values_in_the_minority_format() -> None:
    spec = _spec({"dtype": "datetime"})
    with pytest.raises(DataValidationError) as info:
        validate_frame(_frame(["2024-01-01", "2024-01-02", "03/04/2024"]), spec)
    assert "1 bad row" in str(info.value) and "'03/04/2024'" in str(info.value)


def test_min_rows_is_inclusive() -> None:
    spec = _spec(INT)
    assert len(validate_frame(_frame([1]), spec)) == ROWS
    with pytest.raises(DataValidationError, match=r"min_rows\(10\).*only 9 rows"):
        validate_frame(_frame([1]).head(ROWS - 1), spec)


def test_the_target_must_be_complete_and_have_two_classes() -> None:
    spec = _spec(INT)
    frame = _frame([1]).assign(y=[0, 1, *[0] * 7, None])
    with pytest.raises(DataValidationError, match="y: target_not_null: 1 bad row"):
        validate_frame(frame, spec)
    with pytest.raises(DataValidationError, match=r"y: target_min_classes\(2\)"):
        validate_frame(_frame([1]).assign(y=0), spec)


def test_rows_without_a_target_are_dropped_when_the_spec_says_so() -> None:
    spec = _spec(INT, missing_target="drop")
    frame = pd.concat([_frame([1]), _frame([2]).assign(y=None).head(3)], ignore_index=True)
    validator = BatchValidator(spec)
    clean = validator.check(frame)
    validator.finish()
    assert (len(clean), validator.rows, validator.dropped) == (ROWS, ROWS, 3)
    assert clean["y"].notna().all() and set(clean["v"]) == {1}


def test_min_rows_counts_the_rows_left_after_dropping() -> None:
    spec = _spec(INT, missing_target="drop")
    frame = _frame([1]).assign(y=[0, 1, *[0] * 7, None])
    with pytest.raises(DataValidationError, match="only 9 rows .1 dropped for a missing target"):
        validate_frame(frame, spec)


def test_long_bad_values_are_shortened() -> None:
    spec = _spec({"dtype": "category", "rules": {"allowed": ["a"]}})
    with pytest.raises(DataValidationError) as info:
        validate_frame(_frame(["a", "z" * 200_000]), spec)
    message = str(info.value)
    assert len(message) < 400, len(message)
    assert "'" + "z" * 78 + "\u2026" in message
