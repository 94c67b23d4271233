"""What a run records: names MLflow accepts, every check's delta, the spec's params."""

from __future__ import annotations

import pytest

from mlops.core.spec import load_spec
from mlops.evaluation.decision import BootstrapResult, Decision, MetricRow, TrustedScores
from mlops.model.results import Evaluation
from mlops.tracking.records import (
    TAG_LIMIT,
    decision_tags,
    evaluation_metrics,
    metric_name,
    outcome_tags,
    training_params,
)
from tests.conftest import ROOT

CHURN = ROOT / "configs" / "churn.yaml"


def _evaluation(reasons: list[str]) -> Evaluation:
    rows = [
        MetricRow("roc_auc", 0.81, 0.79, 0.02, 0.005, True, "margin"),
        MetricRow("roc_auc (CI lower bound)", None, None, 0.004, None, True, "bootstrap"),
        MetricRow("f1", 0.6, None, None, None, True, "minimum"),
    ]
    return Evaluation(
        Decision(True, reasons, rows), {"roc_auc": 0.81, "f1": 0.6}, 3,
        {"roc_auc": 0.79, "f1": 0.58}, BootstrapResult(0.02, 0.004, 0.035, "roc_auc"),
        None, "### promote", TrustedScores(3, 100, {"roc_auc": 0.8}, {"roc_auc": 0.78}),
    )


@pytest.mark.parametrize(("parts", "name"), [
    (("delta", "bootstrap", "roc_auc (CI lower bound)"), "delta.bootstrap.roc_auc_CI_lower_bound"),
    (("drift", "monthly charges"), "drift.monthly_charges"),
    (("drift", "a/b:c-d"), "drift.a/b:c-d"),
])
def test_names_are_what_mlflow_accepts(parts, name):
    assert metric_name(*parts) == name


def test_every_check_with_a_delta_is_a_metric():
    metrics = evaluation_metrics(_evaluation(["better"]))
    assert metrics == {
        "candidate.roc_auc": 0.81, "candidate.f1": 0.6,
        "champion.roc_auc": 0.79, "champion.f1": 0.58,
        "delta.margin.roc_auc": 0.02, "delta.bootstrap.roc_auc_CI_lower_bound": 0.004,
        "bootstrap.diff": 0.02, "bootstrap.low": 0.004, "bootstrap.high": 0.035,
        "bootstrap.confidence": 0.95,
        "trusted.candidate.roc_auc": 0.8, "trusted.champion.roc_auc": 0.78,
    }


def test_long_reasons_are_cut_to_a_tag_mlflow_takes():
    tags = decision_tags(_evaluation(["x" * 3000, "y" * 3000]))
    assert len(tags["mlops.reasons"]) == TAG_LIMIT and tags["mlops.decision"] == "promote"
    assert tags["mlops.champion_version"] == "3" and tags["mlflow.note.content"] == "### promote"


def test_the_spec_gives_model_features_and_split_params():
    spec = load_spec(CHURN)
    params = training_params(spec)
    assert params["model.estimator"] == spec.model.estimator
    assert params["split.test_size"] == str(spec.split.test_size)
    for key, value in spec.model.params.items():
        assert params[f"model.params.{key}"] == str(value)
    assert any(k.startswith("features.numeric.") for k in params)
    assert not any(k.startswith(("columns", "evaluation", "registry")) for k in params)


def test_outcome_says_why():
    assert outcome_tags({"outcome": "skipped", "detail": "no champion"}) == {
        "mlops.outcome": "skipped", "mlops.outcome_reason": "no champion"}


def test_tracking_settings_do_not_change_the_spec_hash():
    plain = load_spec(CHURN)
    assert plain.tracking.enabled and plain.tracking.uri is None
    moved = load_spec(CHURN, {"tracking": {"enabled": False, "uri": "http://mlflow:5000"}})
    assert moved.spec_hash() == plain.spec_hash()
