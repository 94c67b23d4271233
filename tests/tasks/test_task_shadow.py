"""The shadow phase of a release on a real local endpoint: before any live step, the candidate
answers mirror copies of live requests, watched with the canary's guards.

blue serves v1 with all traffic; the candidate goes to green; a thread sends requests through
the traffic table while `promote` holds the shadow phase. What decides is the endpoint's own
counters of the copies, read through the client's `metrics`.
"""

from __future__ import annotations

import pytest
from prefect import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from prefect.client.schemas.sorting import ArtifactSort

from mlops.core.errors import CanaryBreachError, DeploymentError
from tasks.deploy import promote
from tests.serving._models import faulty_pipeline, toy_pipeline
from tests.tasks._release_env import FRAME, candidate, spec_for, under_load

pytestmark = [pytest.mark.service, pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]

GUARDS = {"max_error_rate": 0.05, "max_p95_latency_ratio": 10, "min_requests": 20}


def test_a_healthy_candidate_passes_its_shadow_phase_then_takes_the_traffic(release):
    spec = spec_for(release, [100], shadow={"share": 50, "hold": "2s"}, **GUARDS)
    version, plan = candidate(release, toy_pipeline(FRAME, 25), spec)
    traffic, statuses = under_load(release, lambda: promote(plan, version, spec))
    assert traffic == {"green": 100, "blue": 0}
    assert set(statuses) == {200}
    assert release.registry.alias("toy") == version.version
    metrics = release.client.metrics()
    assert metrics["green"].mirrored >= GUARDS["min_requests"]
    assert metrics["blue"].mirrored == 0
    assert release.client.state()["mirror_traffic"] == {}
    with get_client(sync_client=True) as client:  # the shadow phase, as the Prefect UI shows it
        # the newest with this key: other tests of the session release a "toy" model too
        (artifact,) = client.read_artifacts(artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=[f"release-toy-v{version.version}"])),
            sort=ArtifactSort.CREATED_DESC, limit=1)
    # the last reading was the shadow phase's: one of two steps (the phase, then 100%) done
    assert artifact.type == "progress" and artifact.data == 50.0
    assert artifact.description.startswith(
        "shadow phase at 50% mirrored, 0 s of 2 s left: candidate: ")
    assert artifact.description.endswith("(pass)")
    assert release.registry.releases("toy")[-1].kind == "promotion"


@pytest.mark.parametrize("on_rollback", ["keep", "remove"])
def test_errors_in_the_copies_roll_back_before_any_client_sees_the_candidate(
    release, on_rollback
):
    spec = spec_for(release, [{"share": 50, "hold": "60s"}, 100],
                    shadow={"share": 50, "hold": "60s"}, on_rollback=on_rollback, **GUARDS)
    version, plan = candidate(release, faulty_pipeline(FRAME), spec)
    statuses: list[int] = []
    with pytest.raises(DeploymentError) as info:
        under_load(release, lambda: promote(plan, version, spec), statuses)
    assert statuses and set(statuses) == {200}  # clients only ever got blue's answers
    assert isinstance(info.value.__cause__, CanaryBreachError)
    message = str(info.value)
    assert "shadow phase at 50% mirrored" in message and "over max_error_rate 5.0%" in message
    assert "traffic was restored to {'blue': 100}" in message
    state = release.client.state()
    assert state["traffic"] == {"blue": 100, **({"green": 0} if on_rollback == "keep" else {})}
    assert state["mirror_traffic"] == {}
    assert ("green" in state["deployments"]) == (on_rollback == "keep")
    assert release.registry.alias("toy") == 1
    green = release.client.metrics()["green"]
    # the candidate only ever answered copies: every one of its answers was discarded
    assert green.requests == green.mirrored and green.errors > 0
    entry = release.registry.releases("toy")[-1]
    assert (entry.kind, entry.version, entry.champion_after) == ("rollback", version.version, 1)
    assert "shadow phase at 50% mirrored" in entry.detail
