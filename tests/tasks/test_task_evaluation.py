"""tasks/evaluation.py: evaluate_vs_champion judges the candidate on the holdout and decides.

A first model must reach the minimum or nothing is published to the registry; a later one is
compared with the registered champion on the same rows. The picture is saved and published.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prefect import get_client

from mlops.core.errors import LabelDriftError, ModelQualityError
from mlops.core.spec import PipelineSpec, load_spec
from mlops.data.frames import FrameRef, load_frame, save_frame
from mlops.model.bundle import HOLDOUT_FILE
from mlops.model.results import Evaluation, Split, TrainedModel
from mlops.registry.local import LocalRegistry
from tasks.evaluation import check_label_drift, evaluate_vs_champion
from tasks.registry import register_model
from tasks.training import train_model
from tests.conftest import corrupt_labels
from tests.tasks._stages import CHURN_YAML, Stages, fresh_ref

pytestmark = [pytest.mark.service, pytest.mark.usefixtures("prefect_server")]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
WEAK_PARAMS = {"max_iter": 3, "max_depth": 1, "learning_rate": 0.05}


@pytest.fixture(scope="module")
def weak(stages: Stages, churn_dir: str) -> tuple[PipelineSpec, TrainedModel]:
    """A barely trained model of the same spec name, judged on the same holdout rows."""
    spec = load_spec(
        CHURN_YAML,
        {
            "data.url": churn_dir,
            "model.params": WEAK_PARAMS,
            "evaluation.minimum": 0.0,
        },
    )
    return spec, train_model(stages.split, stages.data, spec)


def _champion(stages: Stages, trained: TrainedModel, spec: PipelineSpec, state: Path) -> int:
    """Register `trained` as the first version and point `champion` at it."""
    evaluation = evaluate_vs_champion(
        trained, stages.split, stages.data, spec, str(state / "first")
    )
    version = register_model(trained, stages.split, stages.data, spec, evaluation, 1500)
    LocalRegistry(str(state / "registry")).set_alias(spec.model_name, version.version)
    return version.version


def _png(path: str | Path) -> bytes:
    return Path(path).read_bytes()[: len(PNG_SIGNATURE)]


def test_a_first_model_above_the_minimum_is_promoted(stages, tmp_path, state_dir):
    state = evaluate_vs_champion(
        stages.trained,
        stages.split,
        stages.data,
        stages.spec,
        str(tmp_path / "run"),
        return_state=True,
    )
    evaluation = state.result()
    assert isinstance(evaluation, Evaluation)
    assert evaluation.decision.promote
    assert evaluation.champion_version is None and evaluation.champion_metrics is None
    assert evaluation.bootstrap is None
    assert {"roc_auc", "accuracy", "log_loss"} <= set(evaluation.candidate_metrics)
    assert evaluation.candidate_metrics["roc_auc"] >= stages.spec.evaluation.minimum
    assert evaluation.plot_path == str(tmp_path / "run" / "evaluation.png")
    assert _png(evaluation.plot_path) == PNG_SIGNATURE
    assert "roc_auc" in evaluation.markdown
    assert not (state_dir / "registry").exists()  # evaluating never writes to the registry

    with get_client(sync_client=True) as client:
        # `read_artifacts` of Prefect 3.8.8 sends nulls its own server rejects (422): ask directly
        by_run = {"task_run_id": {"any_": [str(state.state_details.task_run_id)]}}
        response = client.request("POST", "/artifacts/filter", json={"artifacts": by_run})
    artifacts = {a["key"]: a for a in response.json()}
    assert set(artifacts) == {"churn-evaluation", "churn-metrics"}
    assert "data:image/png;base64," in artifacts["churn-evaluation"]["data"]
    assert {row["metric"] for row in json.loads(artifacts["churn-metrics"]["data"])} == {"roc_auc"}


def test_a_first_model_below_the_minimum_raises_and_publishes_nothing(
    stages, churn_dir, tmp_path, state_dir
):
    spec = load_spec(CHURN_YAML, {"data.url": churn_dir, "evaluation.minimum": 0.99})
    with pytest.raises(ModelQualityError) as info:
        evaluate_vs_champion(stages.trained, stages.split, stages.data, spec, str(tmp_path / "run"))
    message = str(info.value)
    assert "first model of 'churn' is not good enough to serve" in message
    assert "roc_auc is 0." in message and "it must be at least 0.9900" in message
    assert not (state_dir / "registry").exists()
    assert _png(tmp_path / "run" / "evaluation.png") == PNG_SIGNATURE  # kept for the post-mortem


def test_a_worse_candidate_keeps_the_champion(stages, weak, tmp_path, state_dir):
    champion = _champion(stages, stages.trained, stages.spec, state_dir)
    weak_spec, weak_model = weak
    run_dir = tmp_path / "run"
    evaluation = evaluate_vs_champion(
        weak_model, stages.split, stages.data, weak_spec, str(run_dir)
    )

    decision = evaluation.decision
    assert decision.promote is False
    assert evaluation.champion_version == champion == 1
    assert evaluation.candidate_metrics["roc_auc"] < evaluation.champion_metrics["roc_auc"]
    assert decision.reasons
    assert any("does not improve enough on the champion's" in r for r in decision.reasons)
    assert evaluation.trusted.rows == stages.split.test.rows  # its own holdout, all 375 rows
    assert evaluation.trusted.champion == pytest.approx(evaluation.champion_metrics)
    assert any(r.startswith("trusted holdout of champion v1 (375 rows)") for r in decision.reasons)
    assert evaluation.bootstrap is not None
    assert evaluation.bootstrap.low <= evaluation.bootstrap.high < 0
    assert Path(evaluation.plot_path) == run_dir / "evaluation.png"
    assert _png(evaluation.plot_path) == PNG_SIGNATURE
    registry = LocalRegistry(str(state_dir / "registry"))
    assert registry.versions("churn") == [1] and registry.alias("churn") == 1


def test_a_better_candidate_is_promoted_over_the_champion(stages, weak, tmp_path, state_dir):
    weak_spec, weak_model = weak
    _champion(stages, weak_model, weak_spec, state_dir)
    evaluation = evaluate_vs_champion(
        stages.trained, stages.split, stages.data, stages.spec, str(tmp_path / "run")
    )
    assert evaluation.decision.promote, evaluation.decision.reasons
    assert evaluation.champion_version == 1
    assert any("improves on the champion's" in r for r in evaluation.decision.reasons)


def test_a_champion_that_cannot_score_the_new_rows_is_reported(stages, weak, tmp_path, state_dir):
    _champion(stages, stages.trained, stages.spec, state_dir)
    weak_spec, _ = weak
    columns = [c.model_dump() for c in weak_spec.columns if c.name != "age"]
    spec = load_spec(
        CHURN_YAML,
        {"data.url": weak_spec.data.url, "columns": columns, "model.params": WEAK_PARAMS},
    )
    train, test = (load_frame(part).drop(columns="age") for part in stages.split)
    split = Split(
        save_frame(train, tmp_path / "train.arrow"), save_frame(test, tmp_path / "test.arrow")
    )
    candidate = train_model(split, fresh_ref(), spec)
    with pytest.raises(ModelQualityError, match=r"champion churn v1 cannot score the new holdout"):
        evaluate_vs_champion(candidate, split, fresh_ref(), spec, str(tmp_path / "run"))


# --- garbage labels against a champion ------------------------------------------------------


def _corrupted(stages: Stages, how: str, folder: Path) -> Split:
    """The same rows with their labels corrupted, in the training and the holdout part."""
    train, test = (corrupt_labels(load_frame(part), "churned", how) for part in stages.split)
    return Split(save_frame(train, folder / f"{how}-train.arrow"),
                 save_frame(test, folder / f"{how}-test.arrow"))


@pytest.mark.parametrize("how", ["shuffled", "flipped"])
def test_garbage_labels_below_the_minimum_fail_and_nothing_is_registered(
    stages, tmp_path, state_dir, how
):
    _champion(stages, stages.trained, stages.spec, state_dir)
    split, data = _corrupted(stages, how, tmp_path), fresh_ref()
    candidate = train_model(split, data, stages.spec)
    with pytest.raises(ModelQualityError) as info:
        evaluate_vs_champion(candidate, split, data, stages.spec, str(tmp_path / "run"))
    message = str(info.value)
    assert message.startswith("candidate (champion v1 stays) of 'churn' is not good enough")
    assert "minimum of the spec; roc_auc is 0." in message
    assert "it must be at least 0.7000" in message
    assert "trusted holdout of champion v1 (375 rows): roc_auc 0." in message
    assert "is beyond the tolerance of 0.0100 worse" in message
    registry = LocalRegistry(str(state_dir / "registry"))
    assert registry.versions("churn") == [1] and registry.alias("churn") == 1


def test_inverted_labels_win_on_their_own_holdout_and_lose_on_the_trusted_one(
    stages, tmp_path, state_dir
):
    """What shipped them before: on the new (inverted) holdout the champion looks worse."""
    _champion(stages, stages.trained, stages.spec, state_dir)
    split, data = _corrupted(stages, "inverted", tmp_path), fresh_ref()
    candidate = train_model(split, data, stages.spec)
    evaluation = evaluate_vs_champion(candidate, split, data, stages.spec, str(tmp_path / "run"))
    decision = evaluation.decision
    assert not decision.promote
    assert [row.rule for row in decision.rows if not row.passed] == ["trusted_holdout"]
    assert len(decision.reasons) == 1
    assert decision.reasons[0].startswith("trusted holdout of champion v1 (375 rows): roc_auc 0.")
    assert decision.reasons[0].endswith("is beyond the tolerance of 0.0100 worse")
    assert evaluation.trusted.candidate["roc_auc"] < 0.5 < evaluation.trusted.champion["roc_auc"]
    registry = LocalRegistry(str(state_dir / "registry"))
    assert registry.versions("churn") == [1] and registry.alias("churn") == 1


def test_a_champion_without_a_trusted_holdout_is_a_warning(stages, weak, tmp_path, state_dir):
    weak_spec, weak_model = weak
    _champion(stages, weak_model, weak_spec, state_dir)
    (state_dir / "registry" / "churn" / "1" / HOLDOUT_FILE).unlink()  # as older versions are
    evaluation = evaluate_vs_champion(
        stages.trained, stages.split, stages.data, stages.spec, str(tmp_path / "run")
    )
    assert evaluation.decision.promote
    assert evaluation.decision.reasons[-1] == (
        "warning: trusted holdout of champion v1 not checked: its version has no stored holdout "
        "(registered before versions kept one)"
    )
    assert not any(row.rule == "trusted_holdout" for row in evaluation.decision.rows)


# --- label drift before training ------------------------------------------------------------


def _labels(stages: Stages, how: str | None, folder: Path) -> FrameRef:
    clean = load_frame(stages.clean)
    if how is not None:
        clean = corrupt_labels(clean, "churned", how)
    return save_frame(clean, folder / f"clean-{how}.arrow")


def test_label_drift_needs_a_champion_and_new_data(stages, tmp_path, state_dir):
    inverted = _labels(stages, "inverted", tmp_path)
    assert check_label_drift(inverted, fresh_ref(), stages.spec) is None  # no champion
    _champion(stages, stages.trained, stages.spec, state_dir)
    assert check_label_drift(inverted, stages.data, stages.spec) is None  # its own data
    verdict = check_label_drift(_labels(stages, None, tmp_path), fresh_ref(), stages.spec)
    assert verdict.method == "jensenshannon" and verdict.score < 0.02 and not verdict.drifted


@pytest.mark.parametrize("how", ["inverted", "flipped"])
def test_drifted_labels_stop_the_run_unless_expected(stages, tmp_path, state_dir, how):
    _champion(stages, stages.trained, stages.spec, state_dir)
    labels = _labels(stages, how, tmp_path)
    with pytest.raises(LabelDriftError) as info:
        check_label_drift(labels, fresh_ref(), stages.spec)
    message = str(info.value)
    assert "label drift, nothing trained: target 'churned' of the new data (1500 rows)" in message
    assert "against champion v1's training sample (1125 rows): Jensen-Shannon distance" in message
    assert ">= threshold 0.1" in message and "expect_label_shift=true" in message
    verdict = check_label_drift(labels, fresh_ref(), stages.spec, expect_shift=True)
    assert verdict.drifted and verdict.score >= verdict.threshold


def test_shuffled_labels_pass_the_label_check(stages, tmp_path, state_dir):
    """A shuffle keeps the distribution: the trusted holdout and the minimum stop it later."""
    _champion(stages, stages.trained, stages.spec, state_dir)
    verdict = check_label_drift(_labels(stages, "shuffled", tmp_path), fresh_ref(), stages.spec)
    assert not verdict.drifted


def test_a_reference_sample_without_the_target_skips_the_check(stages, tmp_path, state_dir):
    import pandas as pd

    from serving.bundle import REFERENCE_FILE

    _champion(stages, stages.trained, stages.spec, state_dir)
    path = state_dir / "registry" / "churn" / "1" / REFERENCE_FILE
    pd.read_parquet(path).drop(columns="churned").to_parquet(path)
    assert check_label_drift(_labels(stages, "inverted", tmp_path), fresh_ref(),
                             stages.spec) is None
