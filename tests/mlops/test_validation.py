"""The schema built from the spec, and one message that lists every failure."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlops.errors import DataValidationError
from mlops.spec import PipelineSpec
from mlops.validation import build_schema, validate_frame


def _spec(columns: list[dict[str, Any]], **extra: Any) -> PipelineSpec:
    return PipelineSpec.model_validate(
        {
            "name": "tiny",
            "data": {"url": "unused"},
            "target": "y",
            "task": "classification",
            "columns": columns,
            "min_rows": 10,
            "model": {"estimator": "sklearn.linear_model.LogisticRegression"},
            "evaluation": {"primary_metric": "roc_auc"},
            **extra,
        }
    )


TINY = _spec(
    [
        {"name": "n", "dtype": "int", "rules": {"min": 0, "max": 9}},
        {"name": "m", "dtype": "int", "rules": {"max_null_fraction": 0.5}},
        {"name": "x", "dtype": "float", "rules": {"max_null_fraction": 0.2}},
        {"name": "c", "dtype": "category", "rules": {"allowed": ["a", "b"]}},
        {"name": "s", "dtype": "string", "role": "id"},
        {"name": "f", "dtype": "bool"},
        {"name": "t", "dtype": "datetime", "role": "timestamp"},
        {"name": "y", "dtype": "int", "rules": {"allowed": [0, 1]}},
    ]
)


def _tiny_frame(rows: int = 10) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "n": np.arange(rows) % 10,
            "m": [1.0, None] * (rows // 2),
            "x": np.linspace(0, 1, rows),
            "c": ["a", "b"] * (rows // 2),
            "s": [f"id{i}" for i in range(rows)],
            "f": [True, False] * (rows // 2),
            "t": ["2024-01-0" + str(1 + i % 9) for i in range(rows)],
            "y": [0, 1] * (rows // 2),
        }
    )


def _message(df: pd.DataFrame, spec: PipelineSpec) -> str:
    with pytest.raises(DataValidationError) as info:
        validate_frame(df, spec)
    return str(info.value)


def test_schema_dtypes() -> None:
    schema = build_schema(TINY)
    dtypes = {name: str(column.dtype) for name, column in schema.columns.items()}
    strings = {dtypes.pop("c"), dtypes.pop("s")}
    assert dtypes == {
        "n": "int64",
        "m": "Int64",
        "x": "float64",
        "f": "boolean",
        "t": "datetime64[ns]",
        "y": "int64",
    }
    assert len(strings) == 1  # pandera shows pandas' "str" as string[pyarrow]; see below
    assert schema.columns["x"].nullable and not schema.columns["n"].nullable


def test_valid_frame_comes_back_coerced() -> None:
    out = validate_frame(_tiny_frame(), TINY)
    assert str(out["m"].dtype) == "Int64"
    assert str(out["f"].dtype) == "boolean"
    assert str(out["t"].dtype) == "datetime64[ns]"
    # Categories come back as pandas' default string dtype, with NaN (not pd.NA) for missing
    # values, which scikit-learn's imputers understand.
    assert out["c"].dtype == pd.StringDtype(na_value=np.nan)
    assert out["s"].dtype == pd.StringDtype(na_value=np.nan)


def test_missing_categories_become_nan() -> None:
    spec = _spec(
        [
            {"name": "c", "dtype": "category", "rules": {"max_null_fraction": 0.5}},
            {"name": "y", "dtype": "int"},
        ]
    )
    df = pd.DataFrame({"c": pd.array(["a", None] * 5, dtype="string"), "y": [0, 1] * 5})
    out = validate_frame(df, spec)
    assert out["c"].isna().sum() == 5
    assert all(isinstance(v, float) for v in out["c"][out["c"].isna()])  # NaN, not pd.NA


def test_coerces_in_place_so_big_tables_are_not_copied() -> None:
    df = _tiny_frame()
    assert df["t"].dtype != "datetime64[ns]"
    out = validate_frame(df, TINY)
    assert out is df
    assert df["t"].dtype == "datetime64[ns]"


def test_generated_churn_passes(churn_yaml: PipelineSpec, generated_churn: pd.DataFrame) -> None:
    out = validate_frame(generated_churn, churn_yaml)
    assert len(out) == 600
    assert str(out["paperless_billing"].dtype) == "boolean"


def test_every_failure_in_one_message(
    churn_yaml: PipelineSpec, generated_churn: pd.DataFrame
) -> None:
    df = generated_churn.head(50).copy()
    df["monthly_charges"] = df["monthly_charges"].astype(object)
    df.loc[df.index[:3], "monthly_charges"] = [600.0, 700.0, 800.0]
    df.loc[df.index[3:6], "monthly_charges"] = np.nan  # 6% null share, limit 5%
    df.loc[df.index[:2], "contract"] = "weekly"
    df["tenure_months"] = df["tenure_months"].astype(object)
    df.loc[df.index[0], "tenure_months"] = "ten"
    df["support_calls"] = -1
    df["age"] = np.nan
    df["churned"] = 0

    message = _message(df, churn_yaml)

    assert "min_rows(500): only 50 rows" in message
    assert (
        "monthly_charges: less_than_or_equal_to(500.0): 3 bad rows, e.g. [600.0, 700.0, 800.0]"
        in message
    )
    assert "monthly_charges: max_null_fraction(0.05): 3 bad rows; null share 6.0%" in message
    allowed = "['month-to-month', 'one-year', 'two-year']"
    assert f"contract: isin({allowed}): 2 bad rows, e.g. ['weekly']" in message
    assert "tenure_months: coerce_dtype('int64'): 1 bad row, e.g. ['ten']" in message
    assert "support_calls: greater_than_or_equal_to(0.0): 50 bad rows, e.g. [-1]" in message
    assert "age: not_entirely_null: all 50 values null" in message
    assert "churned: target_min_classes(2): only 1 class: [0]" in message
    assert "broke 8 rule(s)" in message


def test_wrong_types_name_the_column() -> None:
    df = _tiny_frame()
    df["x"] = ["oops"] + [0.5] * 9
    df["t"] = ["not a date"] + ["2024-01-01"] * 9
    df["f"] = ["maybe"] + [True] * 9
    message = _message(df, TINY)
    assert "x: coerce_dtype('float64'): 1 bad row, e.g. ['oops']" in message
    assert "t: coerce_dtype('datetime64[ns]'): 1 bad row, e.g. ['not a date']" in message
    assert "f: coerce_dtype('boolean')" in message


def test_examples_are_capped_at_five() -> None:
    df = _tiny_frame()
    df["n"] = np.arange(10, 20)
    message = _message(df, TINY)
    assert "n: less_than_or_equal_to(9.0): 10 bad rows, e.g. [10, 11, 12, 13, 14]" in message


def test_nulls_where_none_are_allowed() -> None:
    df = _tiny_frame()
    df["c"] = ["a", None] * 5
    message = _message(df, TINY)
    assert "c: not_nullable: 5 bad rows" in message


def test_target_with_nulls() -> None:
    df = _tiny_frame()
    df["y"] = [0, 1, None, 1, 0, 1, 0, 1, 0, 1]
    message = _message(df, TINY)
    assert "y: target_not_null: 1 bad row" in message
    assert "broke 1 rule(s)" in message


def test_regression_target_needs_no_classes() -> None:
    spec = _spec(
        [{"name": "x", "dtype": "float"}, {"name": "y", "dtype": "float"}],
        task="regression",
        evaluation={"primary_metric": "r2"},
    )
    df = pd.DataFrame({"x": np.arange(10.0), "y": [3.0] * 10})
    assert len(validate_frame(df, spec)) == 10


def test_missing_column_is_reported() -> None:
    message = _message(_tiny_frame().drop(columns=["x"]), TINY)
    assert "x: column_in_dataframe: the column is missing" in message
