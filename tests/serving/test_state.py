"""serving/state.py: traffic never reaches a deployment that is loading or failed to load."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from serving.errors import ServingError
from serving.model_roots import parse_root
from serving.state import (
    FAILED,
    LOADING,
    READY,
    DeploymentRecord,
    Endpoint,
    EndpointState,
    save_state,
)


@pytest.fixture
def recalled(tmp_path, toys) -> Endpoint:
    """An endpoint just restarted: blue (a good bundle) has the traffic, green's bundle is gone;
    both are still loading."""
    registry = Path(toys.v1.url).parent
    save_state(tmp_path, EndpointState(
        {"blue": DeploymentRecord(toys.v1.url, "toy", "1"),
         "green": DeploymentRecord(str(registry / "404"), "toy", "404")},
        {"blue": 100, "green": 0},
    ))
    endpoint = Endpoint(tmp_path, model_roots=[parse_root(registry)])
    endpoint.recall()
    return endpoint


def _refused(endpoint: Endpoint, header: str | None) -> ServingError:
    with pytest.raises(ServingError) as caught:
        endpoint.pick(header)
    return caught.value


def test_traffic_to_a_loading_deployment_is_a_503(recalled):
    assert {d.status for d in recalled.deployments.values()} == {LOADING}
    for header in (None, "blue", "green"):
        refused = _refused(recalled, header)
        assert refused.status == 503 and "is loading" in refused.message
    assert recalled.ready() == (False, ["blue"])
    with pytest.raises(ServingError, match="deployment 'green' is loading"):
        recalled.set_traffic({"green": 100})


def test_traffic_to_a_deployment_that_failed_to_load_is_a_503(recalled):
    asyncio.run(recalled.restore())
    blue, green = recalled.deployments["blue"], recalled.deployments["green"]
    assert (blue.status, green.status) == (READY, FAILED)
    assert "manifest.json is missing" in green.error
    assert recalled.pick(None) is blue and recalled.pick("blue") is blue
    refused = _refused(recalled, "green")
    assert refused.status == 503 and "is failed" in refused.message
    with pytest.raises(ServingError, match="deployment 'green' is failed"):
        recalled.set_traffic({"blue": 50, "green": 50})
    assert recalled.traffic == {"blue": 100, "green": 0}
    assert recalled.ready() == (True, [])


def test_a_recalled_url_outside_the_roots_fails_without_loading(tmp_path, toys):
    save_state(tmp_path, EndpointState({"blue": DeploymentRecord(toys.v1.url)}, {"blue": 100}))
    endpoint = Endpoint(tmp_path, model_roots=[parse_root(tmp_path / "elsewhere")])
    endpoint.recall()
    asyncio.run(endpoint.restore())
    assert endpoint.deployments["blue"].status == FAILED
    assert "not under an allowed model location" in endpoint.deployments["blue"].error
    assert _refused(endpoint, None).status == 503
