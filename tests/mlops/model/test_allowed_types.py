"""serving/allowed_types.py is exactly what the project writes: every name a pipeline built from
a spec holds is allowed, and every allowed name is held by one of them."""

from __future__ import annotations

import itertools
from functools import cache

import pytest

from mlops.core.errors import SpecError
from mlops.core.spec import load_spec
from mlops.model.bundle import dump_model
from mlops.model.features import build_pipeline, fit_pipeline, split_frame
from serving.allowed_types import ALLOWED_TYPES, ESTIMATORS
from serving.model_file import audit_model_file
from tests.mlops._frames import CONFIGS, churn_frame, diabetes_frame
from tests.serving._models import toy_frame, toy_pipeline

SMALL = {"HistGradientBoosting": {"max_iter": 5}, "RandomForest": {"n_estimators": 3},
         "LogisticRegression": {"max_iter": 500}}
PREPROCESSING = [
    {"features.numeric.scale": scale, "features.categorical.encode": encode,
     "features.categorical.max_categories": top, "features.numeric.impute": impute}
    for (scale, impute), encode, top in itertools.product(
        [("standard", "median"), ("minmax", "mean"), ("robust", "most_frequent"),
         ("none", "constant")], ["onehot", "ordinal"], [None, 3])
]


@cache
def _frames():
    return {"churn": churn_frame(300, seed=3), "diabetes": diabetes_frame()}


def _names(estimator: str, options: dict) -> frozenset[str]:
    config = "churn" if "Classifier" in estimator or "Logistic" in estimator else "diabetes"
    params = next((p for key, p in SMALL.items() if key in estimator), {})
    spec = load_spec(CONFIGS / f"{config}.yaml",
                     {"model.estimator": estimator, "model.params": params, **options})
    train, _ = split_frame(_frames()[config], spec)
    return audit_model_file(dump_model(fit_pipeline(spec, train)))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_the_allow_list_is_what_the_project_writes():
    # The preprocessing does not depend on the estimator: every option once, then every
    # estimator once.
    logistic = "sklearn.linear_model.LogisticRegression"
    held = {name for options in PREPROCESSING for name in _names(logistic, options)}
    held |= {name for estimator in sorted(ESTIMATORS) for name in _names(estimator, {})}
    toy = toy_frame(120)
    held |= audit_model_file(dump_model(toy_pipeline(toy, max_iter=3)))
    assert held <= ALLOWED_TYPES, sorted(held - ALLOWED_TYPES)
    assert ALLOWED_TYPES <= held, f"allowed but never written: {sorted(ALLOWED_TYPES - held)}"
    assert ESTIMATORS <= ALLOWED_TYPES


def test_no_name_is_a_module_prefix():
    assert all(not name.endswith(".") and name.count(".") >= 1 for name in ALLOWED_TYPES)
    modules = {name.rsplit(".", 1)[0] for name in ALLOWED_TYPES}
    assert "numpy" in modules and "numpy.testing._private.utils" not in modules


@pytest.mark.parametrize("estimator", ["sklearn.dummy.DummyClassifier",
                                       "sklearn.neighbors.KNeighborsClassifier"])
def test_a_spec_naming_another_estimator_fails_before_training(estimator):
    spec = load_spec(CONFIGS / "churn.yaml", {"model.estimator": estimator, "model.params": {}})
    with pytest.raises(SpecError, match=f"'{estimator}' is not one a bundle may hold"):
        build_pipeline(spec)
