"""Splitting, preprocessing and fitting as the spec says (mlops/model/features.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import skops.io as sio

from mlops.core.errors import DataValidationError, SpecError, TrainingError
from mlops.model.features import (
    build_pipeline,
    build_preprocessor,
    feature_frame,
    fit_pipeline,
    split_columns,
    split_frame,
    split_positions,
    target_series,
)
from serving.allowed_types import ALLOWED_TYPES
from serving.model_file import audit_model_file, load_model_file
from tests.mlops._frames import churn_frame, churn_spec, diabetes_frame, diabetes_spec


@pytest.fixture(scope="module")
def churn() -> pd.DataFrame:
    return churn_frame(600, seed=1)


@pytest.fixture(scope="module")
def churn_model(churn):
    spec = churn_spec()
    train, test = split_frame(churn, spec)
    return spec, fit_pipeline(spec, train), test


# --- splits -----------------------------------------------------------------------------------


def test_random_split_is_stratified_disjoint_and_complete(churn):
    spec = churn_spec({"split.method": "random", "split.test_size": 0.25})
    train, test = split_frame(churn, spec)
    assert len(test) == 150 and len(train) == 450
    assert set(train.index).isdisjoint(test.index)
    assert set(train.index) | set(test.index) == set(churn.index)
    overall = churn["churned"].mean()
    assert abs(train["churned"].mean() - overall) < 0.01
    assert abs(test["churned"].mean() - overall) < 0.01


def test_random_split_is_deterministic_and_follows_the_seed(churn):
    spec = churn_spec({"split.method": "random"})
    first, again = split_frame(churn, spec)[1], split_frame(churn, spec)[1]
    other = split_frame(churn, churn_spec({"split.method": "random", "split.seed": 7}))[1]
    assert first.index.equals(again.index)
    assert not first.index.equals(other.index)


def test_regression_split_is_random_and_sized():
    frame = diabetes_frame()
    train, test = split_frame(frame, diabetes_spec())
    assert len(test) == 111 and len(train) == 331


def test_time_split_puts_the_latest_rows_in_test(churn):
    spec = churn_spec()  # time split on signup_date, test_size 0.25
    train, test = split_frame(churn, spec)
    assert train["signup_date"].max() < test["signup_date"].min()
    assert len(train) + len(test) == len(churn)
    assert 0.25 <= len(test) / len(churn) < 0.30  # rows sharing the cutoff date all go to test
    assert split_frame(churn, spec)[1].index.equals(test.index)


@pytest.mark.parametrize("method", ["time", "random"])
def test_split_positions_need_only_the_split_columns(churn, method):
    spec = churn_spec({"split.method": method})
    assert split_columns(spec) == ["churned", "signup_date"]  # the time column stays named
    train, test = split_positions(churn[split_columns(spec)], spec)
    expected_train, expected_test = split_frame(churn, spec)
    pd.testing.assert_frame_equal(churn.iloc[train], expected_train)
    pd.testing.assert_frame_equal(churn.iloc[test], expected_test)


def test_time_split_with_one_timestamp_leaves_no_training_rows(churn):
    frame = churn.assign(signup_date=pd.Timestamp("2023-01-01"))
    with pytest.raises(DataValidationError, match="train split has 0 rows"):
        split_frame(frame, churn_spec())


def test_time_split_with_one_class_in_test_is_refused(churn):
    frame = churn.copy()
    latest = frame["signup_date"] >= frame["signup_date"].quantile(0.6)
    frame.loc[latest, "churned"] = 0
    with pytest.raises(DataValidationError, match="test split has 1 class"):
        split_frame(frame, churn_spec())


def test_split_of_too_few_rows_lists_every_problem():
    frame = churn_frame(20, seed=3)
    with pytest.raises(DataValidationError) as err:
        split_frame(frame, churn_spec({"split.method": "random"}))
    assert "test split has 5 rows (minimum 10)" in str(err.value)


def test_random_split_of_a_single_row_class_is_a_data_error(churn):
    frame = churn.copy()
    frame.loc[frame.index[0], "churned"] = 2
    with pytest.raises(DataValidationError, match="cannot split"):
        split_frame(frame, churn_spec({"split.method": "random"}))


# --- frames -----------------------------------------------------------------------------------


def test_feature_frame_keeps_only_features_in_spec_order(churn):
    spec = churn_spec()
    features = feature_frame(churn.iloc[:, ::-1], spec)
    assert list(features.columns) == [c.name for c in spec.feature_columns]
    assert not {"customer_id", "signup_date", "churned"} & set(features.columns)


def test_feature_frame_names_missing_columns(churn):
    with pytest.raises(DataValidationError, match="region"):
        feature_frame(churn.drop(columns=["region"]), churn_spec())


def test_target_series_has_numpy_dtypes(churn):
    spec = churn_spec()
    nullable = churn.assign(churned=churn["churned"].astype("Int64"))
    assert target_series(nullable, spec).dtype == np.int64
    with pytest.raises(DataValidationError, match="missing values"):
        target_series(nullable.assign(churned=pd.array([pd.NA] * len(churn), "Int64")), spec)


# --- the pipeline -----------------------------------------------------------------------------


def test_same_spec_and_data_give_identical_predictions(churn):
    spec = churn_spec()
    spec.model.params.pop("random_state")  # the seed now comes from split.seed
    train, test = split_frame(churn, spec)
    first = fit_pipeline(spec, train).predict_proba(feature_frame(test, spec))
    again = fit_pipeline(spec, train).predict_proba(feature_frame(test, spec))
    np.testing.assert_array_equal(first, again)


def test_random_state_defaults_to_the_split_seed():
    spec = churn_spec({"split.seed": 11})
    spec.model.params.pop("random_state")
    assert build_pipeline(spec).named_steps["model"].random_state == 11
    assert build_pipeline(churn_spec()).named_steps["model"].random_state == 42


def test_pipeline_survives_missing_values_and_unseen_categories(churn_model):
    spec, model, test = churn_model
    rows = feature_frame(test, spec).head(6).copy()
    rows["tenure_months"] = rows["tenure_months"].astype("Int64")
    rows.loc[rows.index[0], "tenure_months"] = pd.NA
    rows.loc[rows.index[1], "contract"] = pd.NA
    rows.loc[rows.index[2], "paperless_billing"] = pd.NA
    rows.loc[rows.index[3], "region"] = "atlantis"  # never seen in training
    rows.loc[rows.index[4], "monthly_charges"] = np.nan
    proba = model.predict_proba(rows)
    assert proba.shape == (6, 2)
    assert np.isfinite(proba).all()


def test_none_and_pd_na_give_the_same_prediction(churn_model):
    spec, model, test = churn_model
    rows = feature_frame(test, spec).head(1)
    with_na = rows.assign(payment_method=pd.array([pd.NA], dtype="string"))
    as_object = rows.astype(object).assign(payment_method=[None])
    np.testing.assert_array_equal(model.predict_proba(with_na), model.predict_proba(as_object))


@pytest.mark.parametrize(
    "overrides",
    [
        {"features.categorical.encode": "ordinal", "features.numeric.scale": "none"},
        {"features.categorical.impute": "most_frequent", "features.numeric.scale": "minmax"},
        {"features.categorical.max_categories": None, "features.numeric.scale": "robust",
         "features.numeric.impute": "mean"},
        {"features.categorical.min_frequency": 0.2, "features.numeric.impute": "constant"},
    ],
)
def test_preprocessing_options_fit_and_predict(churn, overrides):
    spec = churn_spec(overrides)
    train, test = split_frame(churn, spec)
    unseen = feature_frame(test, spec).assign(region="atlantis")
    assert np.isfinite(fit_pipeline(spec, train).predict_proba(unseen)).all()


def test_preprocessor_has_one_branch_per_kind_of_column():
    branches = {name: cols for name, _, cols in build_preprocessor(churn_spec()).transformers}
    assert "contract" in branches["categorical"]
    assert "paperless_billing" in branches["categorical"]
    assert "tenure_months" in branches["numeric"]
    assert [name for name, _, _ in build_preprocessor(diabetes_spec()).transformers] == [
        "numeric"
    ]


def test_datetime_feature_becomes_a_number(churn):
    spec = churn_spec()
    spec.column("signup_date").role = "feature"
    spec.split.method, spec.split.time_column = "random", None
    train, test = split_frame(churn, spec)
    model = fit_pipeline(spec, train)
    assert "signup_date" in model.named_steps["preprocess"].transformers_[0][2]
    assert np.isfinite(model.predict_proba(feature_frame(test, spec))).all()


# --- errors -----------------------------------------------------------------------------------


def test_unknown_estimator_is_a_spec_error():
    with pytest.raises(SpecError, match="NoSuchModel"):
        build_pipeline(churn_spec({"model.estimator": "sklearn.ensemble.NoSuchModel"}))


def test_unknown_parameter_is_a_training_error():
    with pytest.raises(TrainingError, match="HistGradientBoostingClassifier.*nonsense"):
        build_pipeline(churn_spec({"model.params.nonsense": 1}))


def test_invalid_parameter_value_is_a_training_error_at_fit(churn):
    spec = churn_spec({"model.params.max_iter": -1})
    train, _ = split_frame(churn, spec)
    with pytest.raises(TrainingError, match="HistGradientBoostingClassifier.*max_iter"):
        fit_pipeline(spec, train)


def test_regression_with_ridge_fits():
    spec = diabetes_spec()
    train, test = split_frame(diabetes_frame(), spec)
    predictions = fit_pipeline(spec, train).predict(feature_frame(test, spec))
    assert predictions.shape == (len(test),)


# --- serialization ----------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["churn", "diabetes"])
def test_skops_round_trip_gives_identical_predictions(which):
    spec, frame = (churn_spec(), churn_frame(400)) if which == "churn" else (
        diabetes_spec(), diabetes_frame())
    train, test = split_frame(frame, spec)
    model = fit_pipeline(spec, train)
    data = sio.dumps(model)
    assert audit_model_file(data) <= ALLOWED_TYPES
    loaded = load_model_file(data)
    X = feature_frame(test, spec)
    np.testing.assert_array_equal(model.predict(X), loaded.predict(X))
    if which == "churn":
        np.testing.assert_array_equal(model.predict_proba(X), loaded.predict_proba(X))
