"""The schema built from the spec, and one message that lists every failure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlops.core.errors import DataValidationError
from mlops.core.spec import PipelineSpec
from mlops.data import frames
from mlops.data.schema import build_schema
from mlops.data.validation import (
    BatchValidator,
    validate_batches,
    validate_checkpoint,
    validate_frame,
)


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


# --- batch by batch ---------------------------------------------------------------------------


def _broken_churn(generated_churn: pd.DataFrame) -> pd.DataFrame:
    """Every kind of failure, spread over the rows: early, late and throughout."""
    df = generated_churn.copy()
    df["monthly_charges"] = df["monthly_charges"].astype(object)
    df.loc[df.index[:3], "monthly_charges"] = [600.0, 700.0, 800.0]
    df.loc[df.index[3:40], "monthly_charges"] = np.nan  # with 3 of its own: 6.7% null share
    df.loc[df.index[[1, 300, 599]], "contract"] = ["weekly", "daily", "weekly"]
    df["tenure_months"] = df["tenure_months"].astype(object)
    df.loc[df.index[[0, 598]], "tenure_months"] = ["ten", "eleven"]
    df.loc[df.index[200:210], "region"] = None
    df.loc[df.index[-7:], "num_products"] = [99, 98, 97, 96, 95, 94, 93]
    df["age"] = np.nan
    return df


def _batches(df: pd.DataFrame, size: int) -> list[pd.DataFrame]:
    return [df.iloc[i:i + size].copy() for i in range(0, len(df), size)]


class _Collect:
    def __init__(self) -> None:
        self.parts: list[pd.DataFrame] = []

    def write(self, part: pd.DataFrame) -> None:
        self.parts.append(part)


@pytest.mark.parametrize("size", [pytest.param(1, marks=pytest.mark.slow), 7, 250, 600])
def test_batches_give_the_message_of_the_whole_table(
    churn_yaml: PipelineSpec, generated_churn: pd.DataFrame, size: int
) -> None:
    broken = _broken_churn(generated_churn)
    whole = _message(broken.copy(), churn_yaml)
    assert "monthly_charges: max_null_fraction(0.05): 40 bad rows; null share 6.7%" in whole
    assert "num_products: less_than_or_equal_to(10.0): 7 bad rows, e.g. [99, 98, 97, 96, 95]" \
        in whole
    sink = _Collect()
    with pytest.raises(DataValidationError) as info:
        validate_batches(_batches(broken, size), churn_yaml, sink)
    assert str(info.value) == whole


@pytest.mark.parametrize("size", [pytest.param(1, marks=pytest.mark.slow), 64, 600])
def test_valid_batches_come_out_coerced_and_complete(
    churn_yaml: PipelineSpec, generated_churn: pd.DataFrame, size: int
) -> None:
    sink = _Collect()
    validate_batches(_batches(generated_churn, size), churn_yaml, sink)
    out = pd.concat(sink.parts)
    expected = validate_frame(generated_churn.copy(), churn_yaml)
    pd.testing.assert_frame_equal(out, expected)


def test_table_rules_count_over_all_batches(churn_yaml: PipelineSpec,
                                            generated_churn: pd.DataFrame) -> None:
    df = generated_churn.copy()
    df["churned"] = 0
    df.loc[df.index[-1], "churned"] = 1  # the second class only in the last batch
    validate_batches(_batches(df, 100), churn_yaml, _Collect())
    with pytest.raises(DataValidationError, match=r"min_rows\(500\): only 400 rows"):
        validate_batches(_batches(generated_churn.head(400), 100), churn_yaml, _Collect())


def test_a_checkpoint_is_validated_into_a_new_one_or_none(
    churn_yaml: PipelineSpec, generated_churn: pd.DataFrame, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with frames.FrameWriter(tmp_path / "raw.arrow") as writer:
        for part in _batches(generated_churn, 60):
            writer.write(part)
    monkeypatch.setattr(frames, "BATCH_ROWS", 100)
    seen: list[int] = []
    check = BatchValidator.check
    monkeypatch.setattr(BatchValidator, "check", lambda self, df: seen.append(len(df)) or check(
        self, df))
    clean = validate_checkpoint(writer.ref, churn_yaml, tmp_path / "clean.arrow")
    assert seen == [120] * 5  # never the whole table at once
    assert clean.rows == 600
    pd.testing.assert_frame_equal(
        frames.load_frame(clean), validate_frame(generated_churn.copy(), churn_yaml)
    )
    broken = _broken_churn(generated_churn)
    broken["tenure_months"] = broken["tenure_months"].astype(str)  # a type Arrow can store
    with pytest.raises(DataValidationError, match="broke 7 rule"):
        validate_checkpoint(frames.save_frame(broken, tmp_path / "broken.arrow"), churn_yaml,
                            tmp_path / "never.arrow")
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == ["broken.arrow", "clean.arrow", "raw.arrow"]  # no partial checkpoint
