"""The two sides of a drift check: the endpoint's inference log for a window, or a data URL."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlops.core.errors import DataValidationError
from mlops.drift.data import read_current, read_inference_window, require_columns, window_dates
from serving.collect import InferenceCollector, Record
from tools.datasets import make_churn

NOW = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)
FEATURES = ["age", "region", "tenure_months"]


def _record(frame: pd.DataFrame, model: str, at: datetime, features=FEATURES) -> Record:
    columns = {name: frame[name].to_numpy() for name in features}
    return Record(columns, np.zeros(len(frame)), "blue", model, "1", f"r-{at:%H%M}", at)


def _collect(root, records) -> str:
    """Write records with the endpoint's own collector, as a running endpoint would."""
    collector = InferenceCollector(str(root), "local-endpoint")
    for record in records:
        collector.add(record)
    collector.flush()
    return f"{root}/local-endpoint"


def test_window_keeps_this_models_rows_since_the_start_across_days(tmp_path):
    rows = make_churn(40, seed=1)
    url = _collect(tmp_path, [
        _record(rows.iloc[:10], "churn", NOW - timedelta(minutes=5)),
        _record(rows.iloc[10:20], "churn", NOW - timedelta(hours=3)),  # yesterday's partition
        _record(rows.iloc[20:30], "churn", NOW - timedelta(hours=30)),  # before the window
        _record(rows.iloc[30:40], "other-model", NOW - timedelta(minutes=5)),
    ])
    current = read_inference_window(url, "churn", FEATURES, NOW - timedelta(hours=24), NOW)
    assert current.rows == 20 and current.files == 3
    assert sorted(current.table.column_names) == sorted(FEATURES)
    assert sorted(current.table["tenure_months"].to_pylist()) == sorted(
        rows.tenure_months.iloc[:20].tolist()
    )
    assert "local-endpoint (churn, 2026-03-01 01:30 to 2026-03-02 01:30 UTC)" in current.source


def test_an_empty_or_missing_log_is_zero_rows(tmp_path):
    current = read_inference_window(
        str(tmp_path / "nothing"), "churn", FEATURES, NOW - timedelta(hours=24), NOW
    )
    assert current.rows == 0


def test_a_feature_named_like_a_context_column_is_kept_apart(tmp_path):
    rows = make_churn(6, seed=2).assign(model_name=["x"] * 6)
    url = _collect(tmp_path, [
        _record(rows, "churn", NOW - timedelta(minutes=1), features=["age", "model_name"]),
    ])
    current = read_inference_window(
        url, "churn", ["age", "model_name"], NOW - timedelta(hours=1), NOW
    )
    assert current.rows == 6 and current.table["model_name"].to_pylist() == ["x"] * 6


def test_mirror_copies_are_left_out_of_the_window(tmp_path):
    """A mirror copy repeats a live request's inputs; counted, they would weigh twice."""
    rows = make_churn(10, seed=4)
    at = NOW - timedelta(minutes=5)
    live = _record(rows, "churn", at)
    copy = dataclasses.replace(live, deployment="green", model_version="2", mirrored=True)
    url = _collect(tmp_path, [live, copy])
    older = pq.read_table(next((tmp_path / "local-endpoint").glob("date=*/part-*.parquet")))
    current = read_inference_window(url, "churn", FEATURES, NOW - timedelta(hours=1), NOW)
    assert current.rows == 10 and sorted(current.table.column_names) == sorted(FEATURES)
    # a log file without the column is read whole
    folder = next((tmp_path / "local-endpoint").glob("date=*"))
    for part in folder.glob("part-*.parquet"):
        part.unlink()
    pq.write_table(older.drop_columns(["mirrored"]), folder / "part-old.parquet")
    assert read_inference_window(url, "churn", FEATURES, NOW - timedelta(hours=1), NOW).rows \
        == older.num_rows


def test_window_dates_cover_each_utc_day():
    assert window_dates(NOW - timedelta(hours=26), NOW) == [
        "2026-02-28", "2026-03-01", "2026-03-02"
    ]


def test_data_url_reads_only_wanted_columns_whatever_their_spelling(tmp_path):
    frame = make_churn(30, seed=3).rename(columns={"tenure_months": "Tenure Months"})
    folder = tmp_path / "batch"
    folder.mkdir()
    frame.iloc[:20].to_parquet(folder / "part-0.parquet", index=False)
    frame.iloc[20:].to_parquet(folder / "part-1.parquet", index=False)
    current = read_current(str(folder), FEATURES)
    assert current.rows == 30 and current.files == 2
    assert current.table.column_names == ["age", "region", "tenure_months"]
    csv = tmp_path / "batch.csv"
    frame.to_csv(csv, index=False)
    assert read_current(str(csv), FEATURES).table.column_names == FEATURES


def test_missing_columns_name_the_source_and_every_column():
    table = pa.table({"age": [1.0], "Region": ["x"]})
    with pytest.raises(DataValidationError) as info:
        require_columns(table, ["age", "region", "tenure_months"], "data at /x")
    assert "data at /x lacks columns ['region', 'tenure_months']" in str(info.value)
