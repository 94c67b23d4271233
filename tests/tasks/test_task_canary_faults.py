"""The endpoint killed during a held step, on a real local endpoint process.

blue serves v1 with all traffic; the candidate v2 goes to green and `promote` holds it at 50%.
A thread kills the endpoint (SIGKILL) once green has its share, and starts it again on the same
state folder, or does not. The endpoint keeps its deployments and traffic across the restart.
"""

from __future__ import annotations

import threading
import time

import pytest

from mlops.core.errors import DeploymentError, EndpointUnreachableError
from mlops.core.settings import get_settings
from tasks.deploy import promote
from tests.serving._models import toy_pipeline
from tests.tasks._release_env import FRAME, Release, candidate, spec_for
from tools.status import status

pytestmark = [pytest.mark.service, pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]

HELD = [{"share": 50, "hold": "120s"}, 100]  # no requests come: the hold only waits
DOWN_S = 3.0  # ten polls of the hold (0.3 s) see no endpoint


def _crash_when_held(release: Release, restart: bool) -> threading.Thread:
    """Kill the endpoint once green holds 50%; with `restart`, start it again `DOWN_S` later."""

    def crash() -> None:
        deadline = time.monotonic() + 60
        while release.client.state()["traffic"].get("green") != 50:
            assert time.monotonic() < deadline, "the release never reached its held step"
            time.sleep(0.05)
        release.endpoint.kill()
        if restart:
            time.sleep(DOWN_S)
            release.endpoint.start()

    thread = threading.Thread(target=crash)
    thread.start()
    return thread


def test_an_endpoint_back_after_a_crash_takes_the_old_traffic_and_the_run_fails(release):
    spec = spec_for(release, HELD, unreachable_wait="60s")
    version, plan = candidate(release, toy_pipeline(FRAME, 25), spec)
    crash = _crash_when_held(release, restart=True)
    with pytest.raises(DeploymentError) as info:
        promote(plan, version, spec, "nightly schedule")
    crash.join(60)
    assert isinstance(info.value.__cause__, EndpointUnreachableError)
    message = str(info.value)
    assert "traffic was restored to {'blue': 100}" in message
    assert "endpoint unreachable: endpoint at http://127.0.0.1:" in message
    assert "it answered again and took the old traffic after" in message
    state = release.client.state()
    assert state["traffic"] == {"blue": 100, "green": 0}
    assert state["deployments"]["green"]["model_version"] == "2"  # kept for inspection
    assert release.registry.alias("toy") == 1
    (entry,) = release.registry.releases("toy")
    assert (entry.kind, entry.version, entry.champion_before, entry.champion_after) == (
        "rollback", 2, 1, 1)
    assert entry.traffic_after == {"blue": 100} and entry.reason == "nightly schedule"
    assert entry.detail.startswith("endpoint unreachable: ")


def test_an_endpoint_that_stays_down_fails_the_run_naming_the_state_left(release):
    spec = spec_for(release, HELD, unreachable_wait="2s")
    version, plan = candidate(release, toy_pipeline(FRAME, 25), spec)
    crash = _crash_when_held(release, restart=False)
    with pytest.raises(DeploymentError) as info:
        promote(plan, version, spec, "new data")
    crash.join(60)
    message = str(info.value)
    assert "did not take the old traffic {'blue': 100} back within 2 s" in message
    assert ("left with traffic {'green': 50, 'blue': 50} (last seen), the candidate v2 on "
            "deployment 'green'; champion stays v1") in message
    assert release.registry.alias("toy") == 1
    (entry,) = release.registry.releases("toy")
    assert (entry.kind, entry.version, entry.traffic_after) == (
        "unresolved", 2, {"green": 50, "blue": 50})
    assert "left with traffic {'green': 50, 'blue': 50}" in entry.detail

    text = status(get_settings(), spec_path=f"{release.spec_dir}/toy.yaml")  # endpoint down
    assert "| - | endpoint unreadable: endpoint at http://127.0.0.1:" in text
    assert text.splitlines()[-1].split(" | ")[1:5] == [
        "unresolved", "v2", "v1 -> v1", "blue 50%, green 50%"]
    release.endpoint.start()  # what the entry names is what the endpoint holds
    assert release.client.state()["traffic"] == {"blue": 50, "green": 50}


def test_a_held_step_on_an_endpoint_without_metrics_fails_before_traffic_moves(release):
    release.endpoint.stop()
    release.endpoint.env["MLOPS_ENDPOINT_METRICS"] = "false"
    release.endpoint.start()  # the same deployments and traffic, no counters
    spec = spec_for(release, HELD)
    version, plan = candidate(release, toy_pipeline(FRAME, 25), spec)
    with pytest.raises(DeploymentError, match=r"traffic was restored to \{'blue': 100\} .*"
                       r"answered 404: per-request metrics are off on this endpoint"):
        promote(plan, version, spec)
    assert release.client.state()["traffic"] == {"blue": 100, "green": 0}
    log = release.endpoint.state_dir / "logs" / f"endpoint-{release.endpoint.port}.log"
    assert "Traffic is now" in log.read_text() and "'green': 50" not in log.read_text()
    assert release.registry.alias("toy") == 1 and release.registry.releases("toy") == []
