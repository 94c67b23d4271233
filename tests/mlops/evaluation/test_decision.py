"""The promotion gate's rules and boundaries (mlops/evaluation: `decide`, `score_trusted`).

Values are binary fractions (0.5, 0.625, 0.125...), so an improvement lands exactly on a limit
and each boundary is tested where it is, not near it. Then real models trained on shuffled,
inverted and partly flipped churn labels meet a champion serving on clean ones.
"""

from __future__ import annotations

import numpy as np
import pytest

from mlops.evaluation.bootstrap import paired_bootstrap
from mlops.evaluation.decision import FLOOR_RULES, BootstrapResult, Predictions, TrustedScores
from mlops.evaluation.gate import decide
from mlops.evaluation.scoring import compute_metrics, score_model, score_trusted
from mlops.model.features import fit_pipeline, split_frame
from tests.conftest import corrupt_labels
from tests.mlops._frames import churn_frame, churn_spec, diabetes_spec

EXACT = {
    "evaluation.promotion_margin": 0.125,
    "evaluation.minimum": 0.5,
    "evaluation.trusted_tolerance": 0.125,
    "evaluation.guard_metrics": [{"name": "accuracy", "tolerance": 0.125}],
}
CHAMPION = {"roc_auc": 0.5, "accuracy": 0.75}


def _spec(**changes):
    return churn_spec({**EXACT, **changes})


def _failed(decision) -> list[str]:
    return [row.rule for row in decision.rows if not row.passed]


# --- margin -----------------------------------------------------------------------------------


def test_an_improvement_exactly_equal_to_the_margin_is_not_enough():
    decision = decide(_spec(), {"roc_auc": 0.625, "accuracy": 0.75}, CHAMPION)
    assert decision.rows[0].delta == 0.125 == decision.rows[0].limit
    assert not decision.promote and _failed(decision) == ["margin"]
    assert "improvement +0.1250, it must exceed the margin 0.1250" in decision.reasons[0]


def test_an_improvement_just_above_the_margin_promotes():
    candidate = {"roc_auc": float(np.nextafter(0.625, 1)), "accuracy": 0.75}
    assert decide(_spec(), candidate, CHAMPION).promote


def test_a_minimized_metric_must_fall_by_more_than_the_margin():
    spec = diabetes_spec({"evaluation.primary_metric": "rmse", "evaluation.guard_metrics": [],
                          "evaluation.promotion_margin": 0.5, "evaluation.minimum": 64.0})
    assert not decide(spec, {"rmse": 49.5}, {"rmse": 50.0}).promote
    assert decide(spec, {"rmse": 49.25}, {"rmse": 50.0}).promote
    assert not decide(spec, {"rmse": 50.75}, {"rmse": 50.0}).promote


# --- guards and bootstrap ---------------------------------------------------------------------


def test_a_guard_may_lose_exactly_its_tolerance_and_no_more():
    at = decide(_spec(), {"roc_auc": 0.75, "accuracy": 0.625}, CHAMPION)
    assert at.promote and at.rows[1].delta == -0.125
    beyond = decide(_spec(), {"roc_auc": 0.75, "accuracy": 0.5}, CHAMPION)
    assert _failed(beyond) == ["guard"]
    assert "change -0.2500 is worse than the tolerance of 0.1250" in beyond.reasons[0]


def test_a_guard_the_candidate_lacks_fails():
    assert _failed(decide(_spec(), {"roc_auc": 0.75}, CHAMPION)) == ["guard"]


def test_a_required_lower_bound_equal_to_the_margin_fails():
    spec = _spec(**{"evaluation.bootstrap.require_lower_bound": True})
    candidate = {"roc_auc": 0.75, "accuracy": 0.75}
    at = decide(spec, candidate, CHAMPION, BootstrapResult(0.25, 0.125, 0.375, "roc_auc"))
    assert _failed(at) == ["bootstrap"]
    above = BootstrapResult(0.25, float(np.nextafter(0.125, 1)), 0.375, "roc_auc")
    assert decide(spec, candidate, CHAMPION, above).promote
    nan = BootstrapResult(0.25, float("nan"), float("nan"), "roc_auc")
    assert _failed(decide(spec, candidate, CHAMPION, nan)) == ["bootstrap"]


# --- minimum, for every candidate -------------------------------------------------------------


def test_the_minimum_applies_to_a_candidate_that_beats_its_champion():
    """Shuffled labels: the champion, re-scored on the same garbage holdout, is as bad."""
    spec = churn_spec({"evaluation.minimum": 0.85, "evaluation.primary_metric": "accuracy",
                       "evaluation.guard_metrics": []})
    decision = decide(spec, {"accuracy": 0.34}, {"accuracy": 0.31})
    assert not decision.promote and _failed(decision) == ["minimum"]
    assert [r.rule for r in decision.failed_floors] == ["minimum"]
    assert "accuracy is 0.3400, it must be at least 0.8500" in decision.reasons[0]


def test_a_candidate_exactly_at_the_minimum_passes_it():
    at = decide(_spec(), {"roc_auc": 0.5, "accuracy": 0.75}, {"roc_auc": 0.25, "accuracy": 0.75})
    assert at.promote
    below = decide(_spec(), {"roc_auc": float(np.nextafter(0.5, 0)), "accuracy": 0.75},
                   {"roc_auc": 0.25, "accuracy": 0.75})
    assert _failed(below) == ["minimum"]


def test_a_first_model_exactly_at_the_minimum_passes_it():
    assert decide(_spec(), {"roc_auc": 0.5}, None).promote
    assert not decide(_spec(), {"roc_auc": float(np.nextafter(0.5, 0))}, None).promote
    assert decide(_spec(), {}, None).failed_floors[0].rule == "minimum"


def test_a_minimized_minimum_is_a_ceiling():
    spec = diabetes_spec({"evaluation.primary_metric": "rmse", "evaluation.guard_metrics": [],
                          "evaluation.minimum": 64.0, "evaluation.promotion_margin": 0.0})
    assert decide(spec, {"rmse": 64.0}, {"rmse": 70.0}).promote
    assert _failed(decide(spec, {"rmse": 64.5}, {"rmse": 70.0})) == ["minimum"]


# --- trusted holdout --------------------------------------------------------------------------


def _trusted(candidate: float, champion: float = 0.75) -> TrustedScores:
    return TrustedScores(3, 400, {"roc_auc": candidate}, {"roc_auc": champion})


def test_the_candidate_may_lose_exactly_the_tolerance_on_the_trusted_holdout():
    candidate = {"roc_auc": 0.75, "accuracy": 0.75}
    at = decide(_spec(), candidate, CHAMPION, trusted=_trusted(0.625))
    assert at.promote
    row = next(r for r in at.rows if r.rule == "trusted_holdout")
    assert (row.delta, row.limit, row.metric) == (-0.125, -0.125, "roc_auc (trusted holdout of v3)")
    beyond = decide(_spec(), candidate, CHAMPION,
                    trusted=_trusted(float(np.nextafter(0.625, 0))))
    assert _failed(beyond) == ["trusted_holdout"]
    assert beyond.failed_floors == []  # a comparison with the champion: it is kept, no failure
    assert ("trusted holdout of champion v3 (400 rows): roc_auc 0.6250 vs champion 0.7500"
            in beyond.reasons[0])
    assert "beyond the tolerance of 0.1250 worse" in beyond.reasons[0]


def test_inverted_labels_win_on_their_own_holdout_and_lose_on_the_trusted_one():
    decision = decide(_spec(), {"roc_auc": 0.75, "accuracy": 0.75}, {"roc_auc": 0.25,
                      "accuracy": 0.25}, trusted=_trusted(0.25))
    assert not decision.promote and _failed(decision) == ["trusted_holdout"]


def test_the_trusted_check_of_a_minimized_metric():
    spec = diabetes_spec({"evaluation.primary_metric": "rmse", "evaluation.guard_metrics": [],
                          "evaluation.minimum": 64.0, "evaluation.trusted_tolerance": 0.5})
    trusted = TrustedScores(1, 100, {"rmse": 50.5}, {"rmse": 50.0})
    assert decide(spec, {"rmse": 40.0}, {"rmse": 50.0}, trusted=trusted).promote
    worse = TrustedScores(1, 100, {"rmse": 50.75}, {"rmse": 50.0})
    assert _failed(decide(spec, {"rmse": 40.0}, {"rmse": 50.0}, trusted=worse)) == [
        "trusted_holdout"]


def test_the_trusted_check_applies_when_the_champion_lacks_the_primary_metric():
    decision = decide(_spec(), {"roc_auc": 0.75}, {"accuracy": 0.5}, trusted=_trusted(0.25))
    assert _failed(decision) == ["trusted_holdout"]


def test_a_champion_without_a_trusted_holdout_is_a_warning_not_a_failure():
    candidate = {"roc_auc": 0.75, "accuracy": 0.75}
    skipped = TrustedScores(2, missing="its version has no stored holdout")
    decision = decide(_spec(), candidate, CHAMPION, trusted=skipped)
    assert decision.promote
    assert decision.reasons[-1] == ("warning: trusted holdout of champion v2 not checked: its "
                                    "version has no stored holdout")
    rejected = decide(_spec(), {"roc_auc": 0.5, "accuracy": 0.75}, CHAMPION, trusted=skipped)
    assert not rejected.promote and rejected.reasons[-1].startswith("warning: trusted holdout")


def test_a_candidate_without_the_metric_on_the_trusted_holdout_fails():
    trusted = TrustedScores(3, 400, {}, {"roc_auc": 0.75})
    decision = decide(_spec(), {"roc_auc": 0.75, "accuracy": 0.75}, CHAMPION, trusted=trusted)
    assert _failed(decision) == ["trusted_holdout"]


def test_every_failed_check_is_reported_at_once():
    decision = decide(_spec(), {"roc_auc": 0.25, "accuracy": 0.5}, CHAMPION,
                      trusted=_trusted(0.25))
    assert _failed(decision) == ["margin", "guard", "minimum", "trusted_holdout"]
    assert len(decision.reasons) == 4
    assert {r.rule for r in decision.failed_floors} == FLOOR_RULES


# --- paired bootstrap -------------------------------------------------------------------------


def test_identical_predictions_give_a_zero_width_interval():
    """Paired resampling: the same rows for both models, so no difference in any resample."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    score = np.clip(y * 0.3 + rng.random(300) * 0.7, 0, 1)
    preds = Predictions(y, (score > 0.5).astype(int), score, np.array([0, 1]))
    for metric in ("roc_auc", "accuracy", "log_loss"):
        result = paired_bootstrap(metric, "classification", preds, preds, 200, 0.95, seed=1)
        assert (result.diff, result.low, result.high) == (0.0, 0.0, 0.0), metric


# --- real models on corrupted labels ----------------------------------------------------------


@pytest.fixture(scope="module")
def served():
    """A champion trained on clean rows, and its trusted holdout (the rows it was judged on)."""
    spec = churn_spec()
    train, trusted = split_frame(churn_frame(1500, seed=1), spec)
    return spec, fit_pipeline(spec, train), trusted


def _judge(served, how: str, spec=None):
    base, champion, trusted = served
    spec = spec or base
    train, holdout = split_frame(corrupt_labels(churn_frame(1500, seed=2), "churned", how), spec)
    candidate = fit_pipeline(spec, train)
    new = compute_metrics("classification", score_model(candidate, holdout, spec))
    old = compute_metrics("classification", score_model(champion, holdout, spec))
    return decide(spec, new, old, None, score_trusted(candidate, champion, trusted, spec, 1))


@pytest.mark.parametrize(
    ("how", "floors"), [("shuffled", ["minimum"]), ("inverted", []), ("flipped", ["minimum"])],
)
def test_models_trained_on_corrupted_labels_are_rejected(served, how, floors):
    decision = _judge(served, how)
    assert not decision.promote
    assert [row.rule for row in decision.failed_floors] == floors
    rows = len(served[2])
    assert any(f"trusted holdout of champion v1 ({rows} rows): roc_auc" in r and
               "beyond the tolerance of 0.0100 worse" in r for r in decision.reasons)


def test_inverted_labels_beat_the_champion_on_their_own_holdout(served):
    """Without the trusted holdout the inverted model would pass every other check."""
    decision = _judge(served, "inverted")
    assert [row.rule for row in decision.rows if not row.passed] == ["trusted_holdout"]


def test_a_genuinely_better_model_still_promotes():
    spec = churn_spec()
    weak = churn_spec({"model.params": {"max_iter": 3, "max_depth": 1, "learning_rate": 0.05}})
    train, trusted = split_frame(churn_frame(1500, seed=1), spec)
    champion = fit_pipeline(weak, train)
    new_train, holdout = split_frame(churn_frame(1500, seed=2), spec)
    candidate = fit_pipeline(spec, new_train)
    decision = decide(
        spec, compute_metrics("classification", score_model(candidate, holdout, spec)),
        compute_metrics("classification", score_model(champion, holdout, spec)), None,
        score_trusted(candidate, champion, trusted, spec, 1),
    )
    assert decision.promote, decision.reasons
    assert any(r.startswith("trusted holdout of champion v1") for r in decision.reasons)


def test_score_trusted_scores_both_models_on_the_same_rows(served):
    spec, champion, trusted = served
    scores = score_trusted(champion, champion, trusted, spec, 4)
    assert scores.candidate == scores.champion and scores.rows == len(trusted) > 300
    assert scores.candidate["roc_auc"] == pytest.approx(
        compute_metrics("classification", score_model(champion, trusted, spec))["roc_auc"])


def test_score_trusted_without_a_holdout_or_with_missing_columns(served):
    spec, champion, trusted = served
    assert score_trusted(champion, champion, None, spec, 2).missing.startswith(
        "its version has no stored holdout")
    lacking = score_trusted(champion, champion, trusted.drop(columns=["age"]), spec, 2)
    assert lacking.missing == f"its {len(trusted)} rows lack the columns ['age']"
    assert lacking.candidate == {}
