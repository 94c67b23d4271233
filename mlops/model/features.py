"""Splitting the data and building the scikit-learn pipeline a spec describes.

The fitted `Pipeline` holds preprocessing and estimator together, so the endpoint applies exactly
what training applied. Everything here is plain pandas/scikit-learn: no Prefect, no I/O.

The frames arriving here are already validated and coerced (nullable `Int64`, `boolean` and
pandas string columns that may hold `pd.NA`). scikit-learn's imputers and encoders do not treat
`pd.NA` as missing, so the pipeline starts each branch with a cast to plain numpy (`np.nan` for a
missing value). The casts live in `serving.transforms`: skops persists them by module path, so
the endpoint and the Azure entry script must be able to import them without this library.
"""

from __future__ import annotations

import inspect
import logging
import math
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    MinMaxScaler,
    OneHotEncoder,
    OrdinalEncoder,
    RobustScaler,
    StandardScaler,
)
from sklearn.utils._param_validation import InvalidParameterError

from mlops.core.errors import DataValidationError, SpecError, TrainingError
from mlops.core.spec import PipelineSpec
from mlops.core.spec.estimator import CategoricalFeatures, NumericFeatures
from serving.allowed_types import ESTIMATORS
from serving.transforms import to_category_array, to_float_array

logger = logging.getLogger(__name__)

NUMERIC_DTYPES = frozenset({"int", "float", "datetime"})
CATEGORICAL_DTYPES = frozenset({"category", "string", "bool"})
# Fewer rows than this in a split make its metrics noise; the spec's min_rows guards the total.
MIN_SPLIT_ROWS = 10
_SCALERS = {"standard": StandardScaler, "minmax": MinMaxScaler, "robust": RobustScaler}


def feature_frame(df: pd.DataFrame, spec: PipelineSpec) -> pd.DataFrame:
    """The model's inputs: the spec's feature columns, in spec order.

    Raises:
        DataValidationError: a feature column is missing from the frame.
    """
    names = [c.name for c in spec.feature_columns]
    missing = [n for n in names if n not in df.columns]
    if missing:
        raise DataValidationError(f"feature columns missing from the data: {missing}")
    return df.loc[:, names]


def target_series(df: pd.DataFrame, spec: PipelineSpec) -> pd.Series:
    """The target with a plain numpy dtype, which every scikit-learn metric understands.

    Raises:
        DataValidationError: the target column is missing or holds missing values.
    """
    if spec.target not in df.columns:
        raise DataValidationError(f"target column '{spec.target}' is missing from the data")
    target = df[spec.target]
    nulls = int(target.isna().sum())
    if nulls:
        raise DataValidationError(f"target '{spec.target}' has {nulls} missing values (limit 0)")
    if spec.task == "regression":
        return target.astype("float64")
    if isinstance(target.dtype, pd.BooleanDtype):
        return target.astype(bool)
    if pd.api.types.is_integer_dtype(target.dtype):
        return target.astype("int64")
    if pd.api.types.is_float_dtype(target.dtype):
        return target.astype("float64")
    return target.astype(str).astype(object)


def _random_split(df: pd.DataFrame, spec: PipelineSpec) -> tuple[np.ndarray, np.ndarray]:
    stratify = target_series(df, spec) if spec.task == "classification" else None
    try:
        train_idx, test_idx = train_test_split(
            np.arange(len(df)),
            test_size=spec.split.test_size,
            random_state=spec.split.seed,
            stratify=stratify,
        )
    except ValueError as exc:  # e.g. a class with a single row cannot be stratified
        raise DataValidationError(f"cannot split the data at random: {exc}") from exc
    # Keep the source order inside each split: the same rows always arrive in the same order.
    return np.sort(train_idx), np.sort(test_idx)


def _time_split(df: pd.DataFrame, spec: PipelineSpec) -> tuple[np.ndarray, np.ndarray]:
    column = spec.split.time_column
    if column not in df.columns:
        raise DataValidationError(f"split.time_column '{column}' is missing from the data")
    stamps = pd.to_datetime(df[column])
    if stamps.isna().any():
        raise DataValidationError(
            f"split.time_column '{column}' has {int(stamps.isna().sum())} missing values (limit 0)"
        )
    order = np.argsort(stamps.to_numpy(), kind="stable")
    n_test = max(1, math.ceil(len(df) * spec.split.test_size))
    cutoff = stamps.iloc[order[len(df) - n_test]]
    # Rows sharing the cutoff time all go to test, so no moment is in both splits.
    in_test = (stamps >= cutoff).to_numpy()
    logger.info("time split at %s: %d train rows, %d test rows", cutoff, (~in_test).sum(),
                in_test.sum())
    return order[~in_test[order]], order[in_test[order]]


def _split_problems(
    name: str, positions: np.ndarray, target: pd.Series | None, spec: PipelineSpec
) -> list[str]:
    problems = []
    if len(positions) < MIN_SPLIT_ROWS:
        problems.append(f"{name} split has {len(positions)} rows (minimum {MIN_SPLIT_ROWS})")
    if target is not None and len(positions):
        classes = target.iloc[positions].nunique()
        if classes < 2:
            problems.append(f"{name} split has {classes} class of '{spec.target}' (minimum 2)")
    return problems


def split_columns(spec: PipelineSpec) -> list[str]:
    """The only columns `split_positions` reads: the target and, for a time split, its column."""
    return list(dict.fromkeys(c for c in (spec.target, spec.split.time_column) if c))


def split_positions(df: pd.DataFrame, spec: PipelineSpec) -> tuple[np.ndarray, np.ndarray]:
    """The row positions of the training and holdout sets, in their order (see `split_frame`).

    Only the columns named by `split_columns` are read, so a stage can split a table it has
    not loaded and then gather the rows itself.

    Raises:
        DataValidationError: a split would be too small or hold a single class; every problem
            is listed at once.
    """
    if spec.split.method == "time":
        train, test = _time_split(df, spec)
    else:
        train, test = _random_split(df, spec)
    target = target_series(df, spec) if spec.task == "classification" else None
    problems = (_split_problems("train", train, target, spec)
                + _split_problems("test", test, target, spec))
    if problems:
        raise DataValidationError(f"{spec.split.method} split unusable: " + "; ".join(problems))
    return train, test


def split_frame(df: pd.DataFrame, spec: PipelineSpec) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split into train and holdout as the spec says, the same way every time.

    A random split is stratified on the target for classification, seeded by `split.seed`. A
    time split puts the latest `split.test_size` share of rows (by `split.time_column`) in the
    holdout, as the model will meet the future, not a shuffled past.

    Returns:
        The train and test frames, with the input's columns and index.

    Raises:
        DataValidationError: a split would be too small or hold a single class; every problem
            is listed at once.
    """
    train, test = split_positions(df, spec)
    return df.iloc[train], df.iloc[test]


# --- the pipeline -----------------------------------------------------------------------------


def _numeric_branch(config: NumericFeatures) -> Pipeline:
    steps: list[tuple[str, Any]] = [
        ("cast", FunctionTransformer(to_float_array, feature_names_out="one-to-one")),
        ("impute", SimpleImputer(strategy=config.impute, fill_value=0.0)),
    ]
    if config.scale != "none":
        steps.append(("scale", _SCALERS[config.scale]()))
    return Pipeline(steps)


def _encoder(config: CategoricalFeatures) -> OneHotEncoder | OrdinalEncoder:
    if config.encode == "ordinal":
        return OrdinalEncoder(
            handle_unknown="use_encoded_value",
            unknown_value=-1,
            max_categories=config.max_categories,
            min_frequency=config.min_frequency,
        )
    grouping = config.max_categories is not None or config.min_frequency is not None
    return OneHotEncoder(
        handle_unknown="infrequent_if_exist" if grouping else "ignore",
        max_categories=config.max_categories,
        min_frequency=config.min_frequency,
        sparse_output=False,  # some estimators (HistGradientBoosting*) refuse sparse input
    )


def _categorical_branch(config: CategoricalFeatures) -> Pipeline:
    return Pipeline([
        ("cast", FunctionTransformer(to_category_array, feature_names_out="one-to-one")),
        ("impute", SimpleImputer(strategy=config.impute, fill_value="missing")),
        ("encode", _encoder(config)),
    ])


def build_preprocessor(spec: PipelineSpec) -> ColumnTransformer:
    """Impute, scale and encode the feature columns as `spec.features` says.

    Numeric and datetime columns share one branch, categorical (category, string, bool) the
    other; a branch with no columns is left out.
    """
    numeric = [c.name for c in spec.feature_columns if c.dtype in NUMERIC_DTYPES]
    categorical = [c.name for c in spec.feature_columns if c.dtype in CATEGORICAL_DTYPES]
    branches = []
    if numeric:
        branches.append(("numeric", _numeric_branch(spec.features.numeric), numeric))
    if categorical:
        branches.append(("categorical", _categorical_branch(spec.features.categorical),
                         categorical))
    return ColumnTransformer(branches, remainder="drop", sparse_threshold=0.0)


def _estimator_params(cls: type, spec: PipelineSpec) -> dict[str, Any]:
    params = dict(spec.model.params)
    try:
        accepted = inspect.signature(cls).parameters
    except (TypeError, ValueError):  # some C-implemented classes have no signature
        accepted = {}
    if "random_state" in accepted and "random_state" not in params:
        params["random_state"] = spec.split.seed
    return params


def build_pipeline(spec: PipelineSpec) -> Pipeline:
    """The unfitted pipeline: the spec's preprocessor, then its estimator.

    `random_state` defaults to `split.seed` when the estimator takes one, so the same spec and
    data train the same model.

    Raises:
        SpecError: the estimator cannot be imported (from `ModelSpec.estimator_class`), or it
            is not one the loaders accept (`serving.allowed_types.ESTIMATORS`).
        TrainingError: the estimator refuses a parameter.
    """
    cls = spec.model.estimator_class()
    if f"{cls.__module__}.{cls.__qualname__}" not in ESTIMATORS:
        raise SpecError(
            f"model.estimator: '{spec.model.estimator}' is not one a bundle may hold; "
            f"allowed: {sorted(n.rsplit('.', 1)[-1] for n in ESTIMATORS)} "
            "(serving/allowed_types.py, docs/trust-boundary.md)"
        )
    params = _estimator_params(cls, spec)
    try:
        estimator = cls(**params)
    except TypeError as exc:
        raise TrainingError(
            f"model.params: {spec.model.estimator} does not accept these parameters "
            f"{sorted(params)}: {exc}"
        ) from exc
    return Pipeline([("preprocess", build_preprocessor(spec)), ("model", estimator)])


def fit_pipeline(spec: PipelineSpec, train_df: pd.DataFrame) -> Pipeline:
    """Build the spec's pipeline and fit it on the training split only.

    Raises:
        TrainingError: scikit-learn refused a parameter or the data at fit time; the message
            names the estimator and scikit-learn's reason (which names the parameter).
    """
    pipeline = build_pipeline(spec)
    X, y = feature_frame(train_df, spec), target_series(train_df, spec)
    try:
        pipeline.fit(X, y)
    except InvalidParameterError as exc:
        raise TrainingError(f"model.params: {spec.model.estimator}: {exc}") from exc
    except (ValueError, TypeError) as exc:
        raise TrainingError(f"fitting {spec.model.estimator} failed: {exc}") from exc
    logger.info("fitted %s on %d rows, %d features", spec.model.estimator, len(X), X.shape[1])
    return pipeline
