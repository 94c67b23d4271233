"""Rollback in one action, on a real local endpoint, and the release history it leaves.

blue serves v1 (champion); v2 is promoted to green; the rollback flow returns to v1.
"""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from flows.rollback import rollback
from mlops.core.errors import DeploymentError
from mlops.core.settings import get_settings
from mlops.tracking.local import local_folder, local_target
from mlops.tracking.process import LOG
from tasks.deploy import promote
from tests.mlops.tracking._logs import wait_for_line
from tests.serving._models import toy_pipeline
from tests.tasks._release_env import FRAME, candidate, spec_for, under_load
from tools.status import status

pytestmark = [pytest.mark.service, pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]


def _promoted(release, spec, max_iter: int, previous: int, reason: str):
    version, plan = candidate(release, toy_pipeline(FRAME, max_iter), spec,
                              previous_champion=previous)
    promote(plan, version, spec, reason)
    return version


def _mlflow_champion(name: str) -> str:
    """Our version that MLflow's `champion` alias points at, once the rollback's recorder
    process, which may outlive the flow, is done."""
    state = get_settings().state_dir
    wait_for_line(local_folder(state) / LOG, "Recorded 1 record(s)")
    client = MlflowClient(local_target(state).uri)
    return client.get_model_version_by_alias(name, "champion").tags["mlops.version"]


def test_rollback_to_a_warm_deployment_is_a_flip_without_failed_requests(release):
    spec = spec_for(release, [100])
    path = f"{release.spec_dir}/toy.yaml"
    _promoted(release, spec, 25, 1, "nightly schedule")
    assert release.client.state()["traffic"] == {"blue": 0, "green": 100}

    result, statuses = under_load(
        release, lambda: rollback(spec_path=path, reason="alice: wrong answers for tenure 0"))
    assert set(statuses) == {200} and len(statuses) > 20
    assert result["how"] == "traffic flip to the warm deployment 'blue'"
    assert release.client.state()["traffic"] == {"blue": 100, "green": 0}
    assert release.registry.alias("toy") == 1
    assert _mlflow_champion("toy") == "1"
    history = release.registry.releases("toy")
    assert [(r.kind, r.version, r.champion_before, r.champion_after) for r in history] == [
        ("promotion", 2, 1, 2), ("rollback", 1, 2, 1)]
    assert history[0].reason == "nightly schedule"
    assert history[1].reason == "alice: wrong answers for tenure 0"
    assert history[1].traffic_before == {"blue": 0, "green": 100}
    assert history[1].traffic_after == {"blue": 100, "green": 0}
    assert history[1].flow_run_id

    text = status(get_settings(), spec_path=path)  # `mlops status --spec ...`
    assert "Champion: **v1**" in text
    assert "| blue | toy | 1 | 100% | ready |" in text
    assert "| green | toy | 2 | 0% | ready |" in text
    newest = text.splitlines()[-2]  # newest first
    assert newest.split(" | ")[1:5] == ["rollback", "v1", "v2 -> v1", "blue 100%, green 0%"]


def test_rollback_to_a_cold_version_redeploys_smoke_tests_and_flips(release):
    spec = spec_for(release, [100])
    path = f"{release.spec_dir}/toy.yaml"
    _promoted(release, spec, 25, 1, "new data")  # green v2
    _promoted(release, spec, 40, 2, "drift")  # blue v3; green keeps v2 warm
    assert rollback(spec_path=path)["how"].startswith("traffic flip to the warm "
                                                      "deployment 'green'")
    result = rollback(spec_path=path, version=1, reason="bob: back to the first")
    assert result["how"] == "redeployed to 'blue', smoke-tested, traffic flipped"
    state = release.client.state()
    assert state["traffic"] == {"blue": 100, "green": 0}
    assert state["deployments"]["blue"]["model_version"] == "1"
    assert release.registry.alias("toy") == 1
    assert release.registry.releases("toy")[-1].detail == result["how"]


def test_rollback_without_a_previous_champion_is_refused_and_changes_nothing(release):
    path = spec_for(release, [100]) and f"{release.spec_dir}/toy.yaml"
    with pytest.raises(DeploymentError, match=r"no previous champion to roll back to: toy v1 "
                       r"was the first champion"):
        rollback(spec_path=path)
    with pytest.raises(DeploymentError, match=r"toy v1 already is the champion"):
        rollback(spec_path=path, version=1)
    assert release.client.state()["traffic"] == {"blue": 100}
    assert release.registry.alias("toy") == 1 and release.registry.releases("toy") == []
