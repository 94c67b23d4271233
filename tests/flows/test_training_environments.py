"""The training flow with a spec that names staging and production: two real endpoint
processes, the staging one started by the local stack's own code (tools/environments.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from flows.training import training
from mlops.core.errors import DeploymentError
from mlops.core.settings import Settings
from mlops.endpoint.local import LocalEndpointClient, _read_keys
from mlops.registry.local import LocalRegistry
from tests.conftest import free_port, write_spec
from tests.flows.test_approval import Background, _resume
from tools import environments

pytestmark = [pytest.mark.slow, pytest.mark.service, pytest.mark.usefixtures("prefect_server")]

WEAK = {"model.params": {"max_iter": 3, "max_depth": 1, "learning_rate": 0.05},
        "evaluation.minimum": 0.5}


def _staged_spec(folder, url: str, name: str = "churn", approval: bool = False) -> str:
    return write_spec(folder, name, {**WEAK, "name": name, "environments": [
        {"name": "staging", "hold": 1, "approval": approval,
         "endpoint": {"url": url, "guards": {"poll": 0.2, "on_too_few": "pass"}}},
        {"name": "production"},
    ]})


@pytest.fixture(scope="module")
def staging_url(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The staging endpoint `mlops up` starts for a spec under configs/ (stopped with the
    stack's other processes)."""
    configs = tmp_path_factory.mktemp("configs")
    url = f"http://127.0.0.1:{free_port()}"
    _staged_spec(configs, url)
    (started,) = environments.up(stack.model_copy(update={"configs_dir": configs}))
    yield started.url


def _client(stack: Settings, url: str) -> LocalEndpointClient:
    keys = _read_keys(stack.endpoint_state_dir)
    return LocalEndpointClient(url, keys["key"], keys["admin_key"])


def _serving(client: LocalEndpointClient) -> tuple:
    state = client.state()
    return ({n: d["model_version"] for n, d in state["deployments"].items()}, state["traffic"])


def test_a_run_releases_through_staging_and_not_past_a_silent_one(
    use_stack, staging_url, churn_data, tmp_path,
):
    registry = LocalRegistry(use_stack.registry_location)
    (tmp_path / "silent").mkdir()
    silent = _staged_spec(tmp_path / "silent", f"http://127.0.0.1:{free_port()}")
    failed = training(spec_path=silent, data_url=churn_data, return_state=True)
    assert failed.is_failed()
    with pytest.raises(DeploymentError, match=r"environment 'staging' \(http://127\.0\.0\.1:\d+\)"
                       r" does not answer"):
        failed.result()
    assert registry.alias("churn") is None and registry.releases("churn") == []
    assert _client(use_stack, use_stack.endpoint_url).state()["deployments"] == {}

    (tmp_path / "good").mkdir()
    result = training(spec_path=_staged_spec(tmp_path / "good", staging_url),
                      data_url=churn_data)
    version = result["version"]
    assert result == {"outcome": "promoted", "version": version, "traffic": {"blue": 100}}
    for url in (staging_url, use_stack.endpoint_url):
        assert _serving(_client(use_stack, url)) == ({"blue": str(version)}, {"blue": 100})
    assert registry.alias("churn") == version
    assert [(r.kind, r.environment, r.version, r.champion_after)
            for r in registry.releases("churn")] == [
        ("promotion", "staging", version, None), ("promotion", "production", version, version)]


def test_a_reviewer_in_staging_can_stop_a_candidate_before_production(
    use_stack, staging_url, churn_data, tmp_path,
):
    spec = _staged_spec(tmp_path, staging_url, name="stagedgate", approval=True)
    run = Background("staged-gate-1", spec_path=spec, data_url=churn_data)
    paused = run.wait_paused()
    production = _client(use_stack, use_stack.endpoint_url)
    before = _serving(production)
    _resume(paused.id, approve=False, comment="not in staging")
    result = run.result()
    assert result == {"outcome": "rejected", "version": 1,
                      "reason": "rejected by the reviewer (not in staging) in 'staging'"}
    assert _serving(production) == before
    registry = LocalRegistry(use_stack.registry_location)
    assert registry.alias("stagedgate") is None
    assert [(r.kind, r.environment) for r in registry.releases("stagedgate")] == [
        ("promotion", "staging"), ("rejection", "staging")]
