"""The watched canary on a real local endpoint: `promote` holds steps under live traffic.

blue serves v1 with all traffic; the candidate goes to green; a thread sends requests through
the traffic table while `promote` holds its steps. Holds are seconds long; what decides is the
endpoint's own counters, read through the client's `metrics`.
"""

from __future__ import annotations

import pytest
from prefect import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

from mlops.core.errors import CanaryBreachError, DeploymentError
from tasks.deploy import promote
from tests.serving._models import faulty_pipeline, slow_pipeline, toy_pipeline
from tests.tasks._release_env import FRAME, candidate, spec_for, under_load

pytestmark = [pytest.mark.service, pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]

GUARDS = {"max_error_rate": 0.05, "max_p95_latency_ratio": 10, "min_requests": 20}


def test_a_healthy_candidate_passes_its_held_steps(release):
    spec = spec_for(release, [{"share": 50, "hold": "2s"}, {"share": 100, "hold": 0}], **GUARDS)
    version, plan = candidate(release, toy_pipeline(FRAME, 25), spec)
    assert (plan.target, plan.previous_traffic) == ("green", {"blue": 100})
    traffic, statuses = under_load(release, lambda: promote(plan, version, spec))
    assert traffic == {"green": 100, "blue": 0}
    assert release.registry.alias("toy") == version.version
    assert set(statuses) == {200}
    assert release.client.metrics()["green"].requests >= GUARDS["min_requests"]
    with get_client(sync_client=True) as client:  # the hold, as the Prefect UI shows it
        (artifact,) = client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=[f"release-toy-v{version.version}"])))
    assert artifact.type == "progress" and artifact.data == 50.0
    assert artifact.description.startswith("step 1/2 at 50%, 0 s of 2 s left: candidate: ")
    assert artifact.description.endswith("(pass)")


def test_errors_in_the_candidate_roll_back_at_once_and_keep_it(release):
    spec = spec_for(release, [{"share": 50, "hold": "60s"}, 100], **GUARDS)
    version, plan = candidate(release, faulty_pipeline(FRAME), spec)
    with pytest.raises(DeploymentError) as info:
        under_load(release, lambda: promote(plan, version, spec))
    assert isinstance(info.value.__cause__, CanaryBreachError)
    message = str(info.value)
    assert "step 1/2 at 50%" in message and "over max_error_rate 5.0%" in message
    assert "traffic was restored to {'blue': 100}" in message and "kept at 0%" in message
    state = release.client.state()
    assert state["traffic"] == {"blue": 100, "green": 0}
    assert "green" in state["deployments"]
    assert release.registry.alias("toy") == 1


def test_a_slow_candidate_rolls_back_on_latency_and_is_removed(release):
    spec = spec_for(release, [{"share": 50, "hold": "60s"}, 100], max_p95_latency_ratio=3,
                 min_requests=20, on_rollback="remove")
    version, plan = candidate(release, slow_pipeline(FRAME), spec)
    with pytest.raises(DeploymentError, match=r"over max_p95_latency_ratio 3") as info:
        under_load(release, lambda: promote(plan, version, spec))
    assert "removed" in str(info.value)
    state = release.client.state()
    assert state["traffic"] == {"blue": 100} and "green" not in state["deployments"]
    assert release.registry.alias("toy") == 1


@pytest.mark.parametrize(("on_too_few", "promoted"), [("rollback", False), ("pass", True)])
def test_a_quiet_hold_decides_as_the_spec_says(release, on_too_few, promoted):
    spec = spec_for(release, [{"share": 10, "hold": "1s"}, 100], min_requests=1,
                 on_too_few=on_too_few)
    version, plan = candidate(release, toy_pipeline(FRAME, 25), spec)
    if promoted:
        assert promote(plan, version, spec) == {"green": 100, "blue": 0}
    else:
        with pytest.raises(DeploymentError, match=r"answered 0 requests in 1 s, fewer than "
                           r"min_requests 1"):
            promote(plan, version, spec)
    assert release.registry.alias("toy") == (version.version if promoted else 1)
