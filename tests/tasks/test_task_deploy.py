"""tasks/deploy.py on a real local endpoint: the idle slot, the smoke test, promotion.

The smoke test must catch an endpoint that answers the right number of predictions but not the
predictions the pipeline computed offline; here the offline side is a model trained on inverted
labels, so nothing is patched.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from mlops.core.errors import DeploymentError
from mlops.core.settings import Settings
from mlops.data.frames import load_frame, save_frame
from mlops.endpoint.local import LocalEndpointClient, _read_keys
from mlops.model.results import DeployPlan, Split, TrainedModel
from mlops.registry.local import LocalRegistry
from mlops.registry.protocol import ModelVersion
from tasks.deploy import _same_predictions, deploy_model, promote, smoke_test
from tasks.evaluation import evaluate_vs_champion
from tasks.registry import register_model
from tasks.training import train_model
from tests.conftest import corrupt_labels, free_port
from tests.tasks._stages import Stages, fresh_ref
from tools.endpoint_process import endpoint_up
from tools.stack import down

pytestmark = [pytest.mark.service, pytest.mark.usefixtures("prefect_server")]


@pytest.fixture
def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalEndpointClient]:
    """A fresh endpoint process per test (a traffic table cannot be emptied again), which the
    tasks reach through the environment."""
    settings = Settings(state_dir=tmp_path / "endpoint-state",
                        endpoint_url=f"http://127.0.0.1:{free_port()}")
    # the registry these tests write sits beside the endpoint's state, not inside it
    monkeypatch.setenv("MLOPS_ENDPOINT_MODEL_ROOTS", json.dumps([str(tmp_path)]))
    endpoint_up(settings)
    keys = _read_keys(settings.endpoint_state_dir)
    monkeypatch.setenv("MLOPS_ENDPOINT_URL", settings.endpoint_url)
    monkeypatch.setenv("MLOPS_ENDPOINT_KEY", keys["key"])
    monkeypatch.setenv("MLOPS_ENDPOINT_ADMIN_KEY", keys["admin_key"])
    try:
        with LocalEndpointClient.from_settings(settings) as http:
            yield http
    finally:
        down(settings)


@pytest.fixture(scope="module")
def inverted(stages: Stages, tmp_path_factory: pytest.TempPathFactory) -> TrainedModel:
    """A model of the same features trained on inverted labels: it disagrees on most rows."""
    folder = tmp_path_factory.mktemp("inverted")
    train = corrupt_labels(load_frame(stages.split.train), "churned", "inverted")
    split = Split(save_frame(train, folder / "train.arrow"), stages.split.test)
    return train_model(split, fresh_ref(), stages.spec)


def _version(stages: Stages, tmp_path: Path) -> ModelVersion:
    evaluation = evaluate_vs_champion(
        stages.trained, stages.split, stages.data, stages.spec, str(tmp_path / "run")
    )
    return register_model(stages.trained, stages.split, stages.data, stages.spec, evaluation, 1)


def _deployed(client: LocalEndpointClient) -> set[str]:
    return set(client.state()["deployments"])


def test_the_smoke_test_compares_the_predictions_not_only_their_number(
    stages, inverted, client, tmp_path
):
    version = _version(stages, tmp_path)
    plan = deploy_model(version, stages.spec)
    assert plan == DeployPlan("blue", {}, "churn", 1)
    rows = load_frame(stages.split.test, [c.name for c in stages.spec.feature_columns]).head(20)
    offline = inverted.pipeline.predict(rows)
    assert (offline != stages.trained.pipeline.predict(rows)).sum() >= 10
    with pytest.raises(DeploymentError) as info:
        smoke_test(plan, inverted, stages.split, stages.spec)
    assert str(info.value) == (
        "smoke test of 'blue' failed: predictions differ from the offline ones for the same rows"
    )
    assert "blue" not in _deployed(client)  # the failed candidate is taken off, never served

    plan = deploy_model(version, stages.spec)
    smoke_test(plan, stages.trained, stages.split, stages.spec)  # the right model passes
    assert _deployed(client) == {"blue"} and not any(client.state()["traffic"].values())


def test_the_smoke_test_checks_the_served_version(stages, client, tmp_path):
    version = _version(stages, tmp_path)
    plan = deploy_model(version, stages.spec)
    wrong = DeployPlan(plan.target, plan.previous_traffic, plan.model_name, 7)
    with pytest.raises(DeploymentError, match=r"served version 1, not 7$"):
        smoke_test(wrong, stages.trained, stages.split, stages.spec)
    assert "blue" not in _deployed(client)


def test_deploy_takes_the_idle_slot_and_promote_moves_traffic_and_champion(
    stages, client, tmp_path, state_dir
):
    first = _version(stages, tmp_path)
    plan = deploy_model(first, stages.spec)
    assert promote(plan, first, stages.spec) == {"blue": 100}
    registry = LocalRegistry(str(state_dir / "registry"))
    assert registry.alias("churn") == 1 and client.state()["traffic"] == {"blue": 100}

    second = _version(stages, tmp_path)
    plan = deploy_model(second, stages.spec)
    assert (plan.target, plan.previous_traffic) == ("green", {"blue": 100})
    steps = stages.spec.model_copy(update={"endpoint": stages.spec.endpoint.model_copy(
        update={"traffic_steps": [30]})})
    assert promote(plan, second, steps) == {"green": 100, "blue": 0}  # always ends at 100
    assert registry.alias("churn") == 2

    third = _version(stages, tmp_path)
    assert deploy_model(third, stages.spec).target == "blue"  # green is live now


def test_deploy_refuses_when_both_slots_carry_traffic(stages, client, tmp_path):
    version = _version(stages, tmp_path)
    promote(deploy_model(version, stages.spec), version, stages.spec)
    client.put_deployment("green", version.url)
    client.set_traffic({"blue": 50, "green": 50})
    both = r"both slots carry traffic \{'blue': 50, 'green': 50\}"
    with pytest.raises(DeploymentError, match=both):
        deploy_model(version, stages.spec)


def test_a_failed_promotion_restores_the_traffic(stages, client, tmp_path, state_dir):
    first = _version(stages, tmp_path)
    promote(deploy_model(first, stages.spec), first, stages.spec)
    second = _version(stages, tmp_path)
    plan = deploy_model(second, stages.spec)
    missing = ModelVersion("churn", 9, second.url, second.manifest)  # the alias cannot move
    with pytest.raises(DeploymentError, match=r"traffic was restored to \{'blue': 100\}"):
        promote(plan, missing, stages.spec)
    assert client.state()["traffic"] == {"blue": 100, "green": 0}
    assert LocalRegistry(str(state_dir / "registry")).alias("churn") == 1


@pytest.mark.parametrize(
    ("served", "offline", "same"),
    [
        ([0.5, 1.25], np.array([0.5, 1.25]), True),
        ([0.5, 1.25 + 1e-12], np.array([0.5, 1.25]), True),
        ([0.5, 1.25 + 1e-6], np.array([0.5, 1.25]), False),
        ([0, 1, 1], np.array([0, 1, 1]), True),
        ([0, 1, 0], np.array([0, 1, 1]), False),
        (["a", "b"], np.array(["a", "b"]), True),
        (["a", "c"], np.array(["a", "b"]), False),
    ],
)
def test_same_predictions(served, offline, same):
    assert _same_predictions(served, offline) is same
