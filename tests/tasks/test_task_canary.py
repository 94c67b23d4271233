"""The watched canary on a real local endpoint: `promote` holds steps under live traffic.

blue serves v1 with all traffic; the candidate goes to green; a thread sends requests through
the traffic table while `promote` holds its steps. Holds are seconds long; what decides is the
endpoint's own counters, read through the client's `metrics`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import pytest

from mlops.core.errors import CanaryBreachError, DeploymentError
from mlops.core.spec import load_spec
from mlops.endpoint.local import LocalEndpointClient
from mlops.endpoint.payloads import frame_to_request
from mlops.registry.local import LocalRegistry
from tasks.deploy import deploy_model, promote
from tests.conftest import free_port, write_spec
from tests.serving._models import (
    FEATURES,
    faulty_pipeline,
    register_pipeline,
    slow_pipeline,
    toy_frame,
    toy_pipeline,
)
from tests.serving.conftest import ADMIN_KEY, SCORING_KEY, server_env, stop
from tools.stack import start_endpoint

pytestmark = [pytest.mark.service, pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]

FRAME = toy_frame()


@dataclass
class Release:
    client: LocalEndpointClient
    registry: LocalRegistry
    registry_dir: Path
    url: str
    spec_dir: Path


@pytest.fixture
def release(tmp_path: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Release]:
    """A fresh endpoint (collection off: the faulty model's answers cannot be stored either)
    with blue serving v1 of the toy model at 100%, v1 the champion."""
    registry_dir = state_dir / "registry"
    port = free_port()
    env = server_env(MLOPS_ENDPOINT_COLLECT="false",
                     MLOPS_ENDPOINT_MODEL_ROOTS=json.dumps([str(tmp_path)]))
    proc = start_endpoint(tmp_path / "endpoint-state", port, env)
    url = f"http://127.0.0.1:{port}"
    for name, value in (("URL", url), ("KEY", SCORING_KEY), ("ADMIN_KEY", ADMIN_KEY)):
        monkeypatch.setenv(f"MLOPS_ENDPOINT_{name}", value)
    client = LocalEndpointClient(url, SCORING_KEY, ADMIN_KEY, timeout=60)
    try:
        first = register_pipeline(registry_dir, FRAME, toy_pipeline(FRAME, 5))
        client.put_deployment("blue", first.url)
        client.set_traffic({"blue": 100})
        registry = LocalRegistry(str(registry_dir))
        registry.set_alias("toy", first.version)
        yield Release(client, registry, registry_dir, url, tmp_path)
    finally:
        client.close()
        stop(proc)


def _spec(release: Release, steps: list, **guards: object):
    path = write_spec(release.spec_dir, "toy", {
        "registry": {"backend": "local", "model_name": "toy"},
        "endpoint": {"backend": "local", "traffic_steps": steps,
                     "guards": {"poll": 0.3, **guards}},
    })
    return load_spec(path)


def _load(url: str, stop_event: threading.Event, statuses: list[int]) -> None:
    """Three-row requests through the traffic table, rows moving along the toy frame."""
    headers = {"Authorization": f"Bearer {SCORING_KEY}", "content-type": "application/json"}
    bodies = [orjson.dumps(frame_to_request(FRAME[FEATURES].iloc[i:i + 3]))
              for i in range(0, 90, 3)]
    with httpx.Client(base_url=url, timeout=30) as http:
        i = 0
        while not stop_event.is_set():
            statuses.append(http.post("/score", content=bodies[i % len(bodies)],
                                      headers=headers).status_code)
            i += 1


def _under_load(release: Release, action: Callable[[], object]) -> tuple[object, list[int]]:
    statuses: list[int] = []
    stop_event = threading.Event()
    thread = threading.Thread(target=_load, args=(release.url, stop_event, statuses))
    thread.start()
    try:
        return action(), statuses
    finally:
        stop_event.set()
        thread.join(60)


def _release(release: Release, pipeline, spec):
    version = register_pipeline(release.registry_dir, FRAME, pipeline)
    plan = deploy_model(version, spec)
    assert (plan.target, plan.previous_traffic) == ("green", {"blue": 100})
    return version, plan


GUARDS = {"max_error_rate": 0.05, "max_p95_latency_ratio": 10, "min_requests": 20}


def test_a_healthy_candidate_passes_its_held_steps(release):
    spec = _spec(release, [{"share": 50, "hold": "2s"}, {"share": 100, "hold": 0}], **GUARDS)
    version, plan = _release(release, toy_pipeline(FRAME, 25), spec)
    traffic, statuses = _under_load(release, lambda: promote(plan, version, spec))
    assert traffic == {"green": 100, "blue": 0}
    assert release.registry.alias("toy") == version.version
    assert set(statuses) == {200}
    assert release.client.metrics()["green"].requests >= GUARDS["min_requests"]


def test_errors_in_the_candidate_roll_back_at_once_and_keep_it(release):
    spec = _spec(release, [{"share": 50, "hold": "60s"}, 100], **GUARDS)
    version, plan = _release(release, faulty_pipeline(FRAME), spec)
    with pytest.raises(DeploymentError) as info:
        _under_load(release, lambda: promote(plan, version, spec))
    assert isinstance(info.value.__cause__, CanaryBreachError)
    message = str(info.value)
    assert "step 1/2 at 50%" in message and "over max_error_rate 5.0%" in message
    assert "traffic was restored to {'blue': 100}" in message and "kept at 0%" in message
    state = release.client.state()
    assert state["traffic"] == {"blue": 100, "green": 0}
    assert "green" in state["deployments"]
    assert release.registry.alias("toy") == 1


def test_a_slow_candidate_rolls_back_on_latency_and_is_removed(release):
    spec = _spec(release, [{"share": 50, "hold": "60s"}, 100], max_p95_latency_ratio=3,
                 min_requests=20, on_rollback="remove")
    version, plan = _release(release, slow_pipeline(FRAME), spec)
    with pytest.raises(DeploymentError, match=r"over max_p95_latency_ratio 3") as info:
        _under_load(release, lambda: promote(plan, version, spec))
    assert "removed" in str(info.value)
    state = release.client.state()
    assert state["traffic"] == {"blue": 100} and "green" not in state["deployments"]
    assert release.registry.alias("toy") == 1


@pytest.mark.parametrize(("on_too_few", "promoted"), [("rollback", False), ("pass", True)])
def test_a_quiet_hold_decides_as_the_spec_says(release, on_too_few, promoted):
    spec = _spec(release, [{"share": 10, "hold": "1s"}, 100], min_requests=1,
                 on_too_few=on_too_few)
    version, plan = _release(release, toy_pipeline(FRAME, 25), spec)
    if promoted:
        assert promote(plan, version, spec) == {"green": 100, "blue": 0}
    else:
        with pytest.raises(DeploymentError, match=r"answered 0 requests in 1 s, fewer than "
                           r"min_requests 1"):
            promote(plan, version, spec)
    assert release.registry.alias("toy") == (version.version if promoted else 1)
