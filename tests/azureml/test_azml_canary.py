"""The watched canary on the Azure ML backend: `promote` holds a step and reads Azure Monitor.

blue serves v1 with all traffic, green holds v2 at 0%; `promote` moves 10% to green and holds
the step. Every call goes through the real SDKs (azure-ai-ml for traffic, azure-monitor-
querymetrics for the metrics) to the HTTP stand-in, whose Azure Monitor splits a steady load by
the traffic table set through the SDK and publishes each minute 90 s after it ends. Time is
simulated: the canary's and the monitor's clocks (and the stand-in's traffic log) read one
`SimClock` that the canary's sleeps move on, so a 5-minute hold takes no wall time.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator

import pytest
from prefect.settings import PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW, temporary_settings

from mlops.core.errors import CanaryBreachError, DeploymentError, EndpointError
from mlops.core.settings import get_settings
from mlops.endpoint import azure_monitor
from mlops.endpoint.backend import endpoint_for
from mlops.model.results import DeployPlan
from mlops.registry.backend import registry_for
from tasks.deploy import promote
from tests.azureml.conftest import AZURE, azure_spec
from tests.azureml.standin import FakeCredential

pytestmark = [pytest.mark.azurite, pytest.mark.service, pytest.mark.usefixtures("prefect_server")]

ENDPOINT = AZURE["endpoint.name"]
GUARDS = {"max_error_rate": 0.02, "max_p95_latency_ratio": 1.5, "min_requests": 100,
          "poll": "30s"}


class SimClock:
    """``time.time``, ``time.monotonic`` and ``time.sleep`` on one simulated clock."""

    def __init__(self, start: float) -> None:
        self.now = start

    def time(self) -> float:
        return self.now

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(use_workspace, monkeypatch) -> Iterator[SimClock]:
    """10 s into a minute; the canary, the monitor and the stand-in read it."""
    from azure.monitor.querymetrics import MetricsClient

    import mlops.release.canary

    sim = SimClock(math.floor(time.time() / 60) * 60 + 10)
    monkeypatch.setattr(mlops.release.canary, "time", sim)
    monkeypatch.setattr(azure_monitor, "time", sim)
    use_workspace.clock = sim.time
    monkeypatch.setattr(azure_monitor, "metrics_client", lambda location: MetricsClient(
        f"https://{location}.metrics.monitor.azure.com", FakeCredential(),
        transport=use_workspace.transport(), retry_backoff_factor=0.01))
    with temporary_settings({PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW: "ignore"}):
        yield sim


def _spec(**guards):
    return azure_spec(**{
        "endpoint.traffic_steps": [{"share": 10, "hold": "5m"}, 100],
        **{f"endpoint.guards.{k}": v for k, v in {**GUARDS, **guards}.items()},
    })


def _candidate(spec, toy):
    """v1 live on blue (champion), v2 on green at 0%: what deploy_model leaves."""
    registry = registry_for(spec, get_settings())
    v1, v2 = (toy.register(registry, name=spec.model_name) for _ in range(2))
    client = endpoint_for(spec, get_settings())
    client.put_deployment("blue", v1.url)
    client.set_traffic({"blue": 100})
    registry.set_alias(spec.model_name, v1.version)
    client.put_deployment("green", v2.url)
    return v2, DeployPlan("green", {"blue": 100}, spec.model_name, v2.version), registry


def _green_traffic(ws) -> list[dict[str, int]]:
    return [table for _, endpoint, table in ws.traffic_log
            if endpoint == ENDPOINT and table.get("green")]


def test_a_healthy_candidate_passes_once_azure_monitor_covers_the_hold(
        use_workspace, clock, toy, state):
    spec = _spec()
    version, plan, registry = _candidate(spec, toy)
    began = clock.now
    traffic = promote(plan, version, spec)
    assert traffic == {"green": 100, "blue": 0}
    assert registry.alias(spec.model_name) == version.version
    assert clock.now - began >= 300 + azure_monitor.DELAY_S  # the hold, then the delay
    assert _green_traffic(use_workspace) == [{"blue": 90, "green": 10}, {"green": 100}]
    queries = [p for m, p in use_workspace.requests if p.endswith("metrics:getBatch")]
    assert len(queries) >= 2 * (300 + azure_monitor.DELAY_S) // 30


@pytest.mark.parametrize(("error_share", "p95_ms", "rule"), [
    (0.1, 40.0, r"5xx share 10\.0% \(\d+ of \d+\) is over max_error_rate 2\.0%"),
    (0.0, 200.0, r"p95 latency 200\.0 ms is 5\.00 times the old deployment's 40\.0 ms, "
                 r"over max_p95_latency_ratio 1\.5"),
])
def test_a_bad_candidate_is_rolled_back_on_azure_monitor_numbers(
        use_workspace, clock, toy, state, error_share, p95_ms, rule):
    spec = _spec()
    version, plan, registry = _candidate(spec, toy)
    use_workspace.behave(ENDPOINT, "green", error_share=error_share, p95_ms=p95_ms)
    with pytest.raises(DeploymentError, match=rule) as info:
        promote(plan, version, spec)
    assert isinstance(info.value.__cause__, CanaryBreachError)
    assert "step 1/2 at 10%" in str(info.value)
    assert "traffic was restored to {'blue': 100}" in str(info.value)
    assert use_workspace.traffic(ENDPOINT) == {"blue": 100}
    assert registry.alias(spec.model_name) == 1
    assert (ENDPOINT, "green") in use_workspace.deployments  # kept at 0% for inspection


def test_errors_azure_monitor_publishes_late_still_roll_back(use_workspace, clock, toy, state):
    """The last two minutes of the hold go bad; they are published after the hold's own 5
    minutes, within the delay the canary waits on Azure."""
    spec = _spec()
    version, plan, _ = _candidate(spec, toy)
    use_workspace.behave(ENDPOINT, "green", error_share=0.5, since=clock.now - 10 + 240)
    with pytest.raises(DeploymentError, match="over max_error_rate"):
        promote(plan, version, spec)
    assert use_workspace.traffic(ENDPOINT) == {"blue": 100}


def test_metrics_azure_monitor_refuses_fail_the_release_before_traffic_moves(
        use_workspace, clock, toy, state):
    spec = _spec()
    version, plan, registry = _candidate(spec, toy)
    use_workspace.fail("POST", "metrics:getBatch", 403, "AuthorizationFailed",
                       "The client 'mlops' does not have authorization to perform action "
                       "'Microsoft.Insights/Metrics/Read' over scope '/subscriptions/...'")
    with pytest.raises(DeploymentError) as info:
        promote(plan, version, spec)
    cause = info.value.__cause__
    assert isinstance(cause, EndpointError)
    assert f"reading the metrics of endpoint '{ENDPOINT}' from Azure Monitor failed (HTTP 403)" \
        in str(cause)
    assert "Microsoft.Insights/Metrics/Read" in str(cause) and "docs/azure.md" in str(cause)
    assert _green_traffic(use_workspace) == []
    assert registry.alias(spec.model_name) == 1
