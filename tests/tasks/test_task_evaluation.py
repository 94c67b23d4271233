"""tasks/evaluation.py: evaluate_vs_champion judges the candidate on the holdout and decides.

A first model must reach the minimum or nothing is published to the registry; a later one is
compared with the registered champion on the same rows. The picture is saved and published.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prefect import get_client

from mlops.errors import ModelQualityError
from mlops.frames import load_frame, save_frame
from mlops.registry import LocalRegistry
from mlops.spec import PipelineSpec, load_spec
from tasks.evaluation import Evaluation, evaluate_vs_champion
from tasks.features import Split
from tasks.registry import register_model
from tasks.training import TrainedModel, train_model
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
