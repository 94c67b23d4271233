"""tasks/features.py: build_features splits the validated rows once, the same way every time."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops.core.errors import DataValidationError
from mlops.core.spec import load_spec
from mlops.data.frames import load_frame, save_frame
from mlops.model.results import Split
from tasks._options import run_stage
from tasks.features import build_features
from tests.tasks._stages import CHURN_YAML, fresh_ref

pytestmark = [pytest.mark.service, pytest.mark.usefixtures("prefect_server")]


def test_time_split_holds_out_the_latest_quarter(stages):
    split = stages.split
    assert isinstance(split, Split)
    assert (split.train.rows, split.test.rows) == (1125, 375)
    train, test = load_frame(split.train), load_frame(split.test)
    assert train["signup_date"].max() < test["signup_date"].min()
    assert list(train.columns) == list(test.columns) == [c.name for c in stages.spec.columns]
    ids = set(train["customer_id"]) | set(test["customer_id"])
    assert len(ids) == 1500  # every row once, in one split only
    assert set(test["churned"]) == {0, 1}


def test_random_split_is_stratified_and_repeatable(stages, churn_dir):
    spec = load_spec(CHURN_YAML, {"data.url": churn_dir, "split.method": "random"})
    ref = fresh_ref()
    split = build_features(stages.clean, ref, spec)
    assert (split.train.rows, split.test.rows) == (1125, 375)
    share = load_frame(stages.clean)["churned"].mean()
    test = load_frame(split.test)
    assert test["churned"].mean() == pytest.approx(share, abs=0.01)
    again = build_features.with_options(refresh_cache=True)(stages.clean, ref, spec)
    assert load_frame(again.test)["customer_id"].tolist() == test["customer_id"].tolist()


def test_split_is_cached_by_data_and_spec(stages, churn_dir):
    ref = fresh_ref()
    first = build_features(stages.clean, ref, stages.spec, return_state=True)
    second = build_features(stages.clean, ref, stages.spec, return_state=True)
    assert (first.name, second.name) == ("Completed", "Cached")
    assert second.result() == first.result()
    reseeded = load_spec(CHURN_YAML, {"data.url": churn_dir, "split.seed": 7})
    assert build_features(stages.clean, ref, reseeded, return_state=True).name == "Completed"


def test_run_stage_rebuilds_a_split_whose_tables_were_removed(stages):
    ref = fresh_ref()
    first = run_stage(build_features, stages.clean, ref, stages.spec)
    for table in first:
        Path(table.path).unlink()
    again = run_stage(build_features, stages.clean, ref, stages.spec)
    assert again == first  # same places, written again
    assert all(table.exists() for table in again)


def test_too_few_rows_for_a_holdout(stages, tmp_path):
    few = save_frame(load_frame(stages.clean).head(30), tmp_path / "few.arrow")
    with pytest.raises(DataValidationError, match=r"test split has 8 rows \(minimum 10\)"):
        build_features(few, fresh_ref(), stages.spec)


def test_a_holdout_with_one_class_is_refused(stages, tmp_path):
    clean = load_frame(stages.clean)
    latest = clean["signup_date"] >= clean["signup_date"].quantile(0.7)
    clean.loc[latest, "churned"] = 0
    one_class = save_frame(clean, tmp_path / "one-class.arrow")
    with pytest.raises(DataValidationError, match="test split has 1 class of 'churned'"):
        build_features(one_class, fresh_ref(), stages.spec)
    assert build_features.retries == 0  # computation: retrying gives the same answer
