"""Metrics, the paired bootstrap, the promotion decision and the plots (mlops/evaluation/)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from mlops.core.spec.evaluation import CLASSIFICATION_METRICS, METRIC_DIRECTIONS, REGRESSION_METRICS
from mlops.evaluation.bootstrap import BootstrapResult, paired_bootstrap, weighted_metric
from mlops.evaluation.gate import Decision, decide, decision_markdown
from mlops.evaluation.plots import plot_comparison
from mlops.evaluation.scoring import Predictions, compute_metrics, score_model
from mlops.model.features import fit_pipeline, split_frame
from tests.mlops._frames import churn_frame, churn_spec, diabetes_frame, diabetes_spec

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def binary_preds(rows: int = 400, noise: float = 1.0, seed: int = 0) -> Predictions:
    """Scores that separate the classes better the smaller `noise` is."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, rows)
    score = 1 / (1 + np.exp(-(2 * y - 1 + rng.normal(0, noise, rows))))
    return Predictions(y, (score > 0.5).astype(int), score, np.array([0, 1]))


def multiclass_preds(rows: int = 300, seed: int = 0) -> Predictions:
    rng = np.random.default_rng(seed)
    classes = np.array(["a", "b", "c"])
    y = classes[rng.integers(0, 3, rows)]
    logits = (y[:, None] == classes[None, :]) * 1.5 + rng.normal(0, 1, (rows, 3))
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return Predictions(y, classes[proba.argmax(axis=1)], proba, classes)


def regression_preds(rows: int = 300, noise: float = 10.0, seed: int = 0) -> Predictions:
    rng = np.random.default_rng(seed)
    y = rng.normal(150, 50, rows)
    return Predictions(y, y + rng.normal(0, noise, rows))


# --- scoring and metrics ----------------------------------------------------------------------


def test_score_model_on_a_fitted_churn_pipeline():
    spec = churn_spec()
    train, test = split_frame(churn_frame(500), spec)
    preds = score_model(fit_pipeline(spec, train), test, spec)
    assert preds.y_score.shape == (len(test),)
    assert list(preds.classes) == [0, 1]
    scores = compute_metrics("classification", preds)
    assert set(scores) == CLASSIFICATION_METRICS
    assert scores["roc_auc"] > 0.6


def test_score_model_on_a_regression():
    spec = diabetes_spec()
    train, test = split_frame(diabetes_frame(), spec)
    preds = score_model(fit_pipeline(spec, train), test, spec)
    assert preds.y_score is None and preds.classes is None
    scores = compute_metrics("regression", preds)
    assert set(scores) == REGRESSION_METRICS
    assert scores["r2"] > 0.3


def test_multiclass_metrics_are_macro_averages():
    preds = multiclass_preds()
    scores = compute_metrics("classification", preds)
    assert set(scores) == CLASSIFICATION_METRICS
    assert scores["f1"] == pytest.approx(skm.f1_score(preds.y_true, preds.y_pred, average="macro"))
    assert 0.5 < scores["roc_auc"] < 1


def test_metric_names_and_directions():
    assert set(METRIC_DIRECTIONS) == CLASSIFICATION_METRICS | REGRESSION_METRICS
    good, bad = binary_preds(noise=0.3), binary_preds(noise=3.0)
    good_scores = compute_metrics("classification", good)
    bad_scores = compute_metrics("classification", bad)
    for name, direction in METRIC_DIRECTIONS.items():
        if name in good_scores:
            better = good_scores[name] > bad_scores[name]
            assert better == (direction == "maximize"), name


def test_ranking_metrics_are_left_out_without_probabilities():
    preds = binary_preds()
    scores = compute_metrics("classification", Predictions(preds.y_true, preds.y_pred))
    assert "roc_auc" not in scores and "accuracy" in scores


@pytest.mark.parametrize(
    ("make", "task"),
    [(binary_preds, "classification"), (multiclass_preds, "classification"),
     (regression_preds, "regression")],
)
def test_bootstrap_metrics_match_scikit_learn(make, task):
    preds = make()
    expected = compute_metrics(task, preds)
    ones = np.ones((1, len(preds.y_true)))
    for name, value in expected.items():
        assert weighted_metric(name, preds, ones)[0] == pytest.approx(value, rel=1e-9), name


@pytest.mark.parametrize("make", [binary_preds, multiclass_preds, regression_preds])
def test_integer_weights_equal_repeated_rows(make):
    preds = make()
    task = "regression" if preds.classes is None else "classification"
    rng = np.random.default_rng(5)
    idx = rng.integers(0, len(preds.y_true), len(preds.y_true))
    weights = np.bincount(idx, minlength=len(preds.y_true))[None, :].astype(float)
    resampled = Predictions(
        preds.y_true[idx], preds.y_pred[idx],
        None if preds.y_score is None else preds.y_score[idx], preds.classes,
    )
    for name, value in compute_metrics(task, resampled).items():
        assert weighted_metric(name, preds, weights)[0] == pytest.approx(value, rel=1e-9), name


# --- paired bootstrap -------------------------------------------------------------------------


def test_clearly_better_candidate_has_a_positive_lower_bound():
    champ, cand = binary_preds(noise=2.0), binary_preds(noise=0.5)
    result = paired_bootstrap("roc_auc", "classification", cand, champ, 300, 0.95, seed=1)
    assert result.low > 0 and result.diff > 0
    assert result.low <= result.diff <= result.high


def test_worse_candidate_on_a_minimized_metric_is_negative():
    champ, cand = regression_preds(noise=5.0), regression_preds(noise=30.0)
    result = paired_bootstrap("rmse", "regression", cand, champ, 300, 0.95, seed=1)
    assert result.high < 0 and result.diff < 0


def test_better_candidate_on_a_minimized_metric_is_positive():
    champ, cand = binary_preds(noise=2.0), binary_preds(noise=0.5)
    result = paired_bootstrap("log_loss", "classification", cand, champ, 200, 0.9, seed=1)
    assert result.low > 0
    assert result.confidence == 0.9 and result.metric == "log_loss"


def test_bootstrap_is_repeatable_with_its_seed():
    champ, cand = binary_preds(noise=1.0), binary_preds(noise=0.9, seed=0)
    first = paired_bootstrap("accuracy", "classification", cand, champ, 200, 0.95, seed=3)
    again = paired_bootstrap("accuracy", "classification", cand, champ, 200, 0.95, seed=3)
    assert first == again


def test_bootstrap_refuses_predictions_for_different_rows():
    with pytest.raises(ValueError, match="different rows"):
        paired_bootstrap("roc_auc", "classification", binary_preds(100), binary_preds(120),
                         100, 0.95, seed=0)


@pytest.mark.parametrize("metric", ["roc_auc", "average_precision", "log_loss", "f1"])
def test_bootstrap_interval_brackets_the_observed_difference(metric):
    champ, cand = binary_preds(5000, noise=1.2), binary_preds(5000, noise=1.0)
    result = paired_bootstrap(metric, "classification", cand, champ, 500, 0.95, seed=0)
    assert result.low <= result.diff <= result.high


# --- decide -----------------------------------------------------------------------------------


def test_first_model_above_the_minimum_is_promoted():
    decision = decide(churn_spec(), {"roc_auc": 0.75}, None)
    assert decision.promote
    assert decision.rows[0].limit == 0.70


def test_first_model_below_the_minimum_is_rejected_with_the_numbers():
    decision = decide(churn_spec(), {"roc_auc": 0.65}, None)
    assert not decision.promote
    assert "0.6500" in decision.reasons[0] and "0.7000" in decision.reasons[0]


def test_first_model_without_a_minimum_is_promoted():
    spec = churn_spec()
    spec.evaluation.minimum = None
    assert decide(spec, {"roc_auc": 0.51}, None).promote


def test_first_model_minimum_of_a_minimized_metric():
    spec = diabetes_spec({"evaluation.primary_metric": "rmse", "evaluation.minimum": 60.0,
                          "evaluation.guard_metrics": []})
    assert decide(spec, {"rmse": 55.0}, None).promote
    assert not decide(spec, {"rmse": 65.0}, None).promote


def test_champion_without_the_primary_metric_falls_back_to_the_minimum():
    decision = decide(churn_spec(), {"roc_auc": 0.75}, {"accuracy": 0.7})
    assert decision.promote
    assert "no recorded roc_auc" in decision.reasons[0]


CHAMPION = {"roc_auc": 0.80, "accuracy": 0.75, "log_loss": 0.50}


def test_better_candidate_is_promoted():
    candidate = {"roc_auc": 0.82, "accuracy": 0.755, "log_loss": 0.49}
    decision = decide(churn_spec(), candidate, CHAMPION)
    assert decision.promote
    assert all(row.passed for row in decision.rows)
    assert decision.rows[0].delta == pytest.approx(0.02)


def test_worse_candidate_is_rejected():
    decision = decide(churn_spec(), {**CHAMPION, "roc_auc": 0.78}, CHAMPION)
    assert not decision.promote
    assert len(decision.reasons) == 1 and "roc_auc 0.7800" in decision.reasons[0]


def test_improvement_within_the_margin_is_not_enough():
    decision = decide(churn_spec(), {**CHAMPION, "roc_auc": 0.8015}, CHAMPION)
    assert not decision.promote
    assert "margin 0.0020" in decision.reasons[0]


def test_guard_regressions_are_all_reported_together():
    candidate = {"roc_auc": 0.85, "accuracy": 0.70, "log_loss": 0.60}
    decision = decide(churn_spec(), candidate, CHAMPION)
    assert not decision.promote
    failed = [row.metric for row in decision.rows if not row.passed]
    assert failed == ["accuracy", "log_loss"]
    assert len(decision.reasons) == 2
    assert "log_loss 0.6000" in decision.reasons[1] and "0.0200" in decision.reasons[1]


def test_guard_within_tolerance_passes():
    candidate = {"roc_auc": 0.85, "accuracy": 0.745, "log_loss": 0.515}
    assert decide(churn_spec(), candidate, CHAMPION).promote


def test_minimized_primary_metric_improves_downwards():
    spec = diabetes_spec({"evaluation.primary_metric": "rmse", "evaluation.guard_metrics": [],
                          "evaluation.minimum": 100.0})
    assert decide(spec, {"rmse": 50.0}, {"rmse": 55.0}).promote
    assert not decide(spec, {"rmse": 56.0}, {"rmse": 55.0}).promote


def test_required_lower_bound_must_clear_the_margin():
    spec = churn_spec({"evaluation.bootstrap.require_lower_bound": True})
    candidate = {"roc_auc": 0.82, "accuracy": 0.75, "log_loss": 0.50}
    narrow = BootstrapResult(0.02, 0.005, 0.035, "roc_auc")
    wide = BootstrapResult(0.02, -0.01, 0.05, "roc_auc")
    assert decide(spec, candidate, CHAMPION, narrow).promote
    rejected = decide(spec, candidate, CHAMPION, wide)
    assert not rejected.promote
    assert "lower bound does not exceed" in rejected.reasons[0]
    assert not decide(spec, candidate, CHAMPION, None).promote


def test_lower_bound_not_required_is_only_reported():
    candidate = {"roc_auc": 0.82, "accuracy": 0.75, "log_loss": 0.50}
    wide = BootstrapResult(0.02, -0.01, 0.05, "roc_auc")
    decision = decide(churn_spec(), candidate, CHAMPION, wide)
    assert decision.promote
    assert [row.limit for row in decision.rows if row.rule == "bootstrap"] == [None]


def test_decision_markdown_has_the_table_and_verdict():
    spec = churn_spec()
    decision = decide(spec, {"roc_auc": 0.85, "accuracy": 0.70, "log_loss": 0.5}, CHAMPION)
    text = decision_markdown(decision, spec)
    assert "| metric | candidate | champion |" in text
    assert "| accuracy | 0.7000 | 0.7500 | -0.0500 | -0.0100 | **fail** |" in text
    assert "keep the champion" in text
    first = decision_markdown(Decision(True, ["first model"], []), spec)
    assert "promote the candidate" in first


# --- plots ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("task", "cand", "champ"),
    [
        ("classification", binary_preds(noise=0.5), binary_preds(noise=1.5)),
        ("classification", binary_preds(), None),
        ("classification", multiclass_preds(), multiclass_preds(seed=1)),
        ("regression", regression_preds(), regression_preds(noise=20)),
    ],
)
def test_plot_comparison_writes_a_png(tmp_path, task, cand, champ):
    path = plot_comparison(task, cand, champ, tmp_path / "plots" / "comparison.png")
    assert path.stat().st_size > 10_000
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_bootstrap_of_a_large_holdout_resamples_a_seeded_subsample():
    champ, cand = binary_preds(20_000, noise=1.2), binary_preds(20_000, noise=1.0)
    capped = paired_bootstrap("roc_auc", "classification", cand, champ, 200, 0.95, seed=3,
                              max_rows=2_000)
    again = paired_bootstrap("roc_auc", "classification", cand, champ, 200, 0.95, seed=3,
                             max_rows=2_000)
    full = paired_bootstrap("roc_auc", "classification", cand, champ, 200, 0.95, seed=3)
    assert capped == again
    assert (capped.high - capped.low) > (full.high - full.low)  # fewer rows, wider interval
