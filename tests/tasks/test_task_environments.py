"""Staged environments on two real local endpoints (tasks/_environments.py).

Production is the release fixture's endpoint (blue serves v1 at 100%, v1 the champion); staging
is a second endpoint process with the same keys, as `mlops up` starts it. The candidate goes
through staging with `release_to_environments`, then to production with the tasks the flow
calls after it.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from mlops.core.errors import DeploymentError
from mlops.core.spec import load_spec
from mlops.data.frames import save_frame
from mlops.endpoint.local import LocalEndpointClient
from mlops.endpoint.payloads import frame_to_request
from mlops.model.results import Split, TrainedModel
from tasks._environments import release_to_environments
from tasks.deploy import deploy_model, promote, smoke_test
from tests.conftest import free_port, write_spec
from tests.serving._models import FEATURES, faulty_pipeline, register_pipeline, toy_pipeline
from tests.serving.conftest import ADMIN_KEY, SCORING_KEY, server_env, stop
from tests.tasks._release_env import FRAME, Release
from tools.endpoint_process import start_endpoint

pytestmark = [pytest.mark.service, pytest.mark.slow, pytest.mark.usefixtures("prefect_server")]

TOY_COLUMNS = [
    {"name": "num_a", "dtype": "float", "rules": {"max_null_fraction": 0.2}},
    {"name": "Tenure Months", "dtype": "int"},
    {"name": "cat_c", "dtype": "category"},
    {"name": "label", "dtype": "int"},
]


@pytest.fixture
def staging(release: Release, tmp_path: Path) -> Iterator[LocalEndpointClient]:
    """A second, empty endpoint process with production's keys and the same model root."""
    port = free_port()
    env = server_env(MLOPS_ENDPOINT_COLLECT="false",
                     MLOPS_ENDPOINT_MODEL_ROOTS=json.dumps([str(tmp_path)]))
    proc = start_endpoint(tmp_path / "staging-state", port, env)
    client = LocalEndpointClient(f"http://127.0.0.1:{port}", SCORING_KEY, ADMIN_KEY, timeout=60)
    try:
        yield client
    finally:
        client.close()
        stop(proc)


def _spec(release: Release, staging_url: str, hold: float = 1.0, **guards: object):
    """The toy model's spec: staging at `staging_url`, held `hold` s, then production."""
    path = write_spec(release.spec_dir, "toy-staged", {
        "target": "label", "columns": TOY_COLUMNS, "split": {"method": "random"},
        "registry": {"backend": "local", "model_name": "toy"},
        "endpoint": {"backend": "local", "traffic_steps": [100]},
        "environments": [
            {"name": "staging", "hold": hold,
             "endpoint": {"url": staging_url, "guards": {"poll": 0.2, **guards}}},
            {"name": "production"},
        ],
    })
    return load_spec(path)


def _candidate(release: Release, pipeline, tmp_path: Path):
    """Register `pipeline` as the next toy version; what the flow's stages hand the release."""
    version = register_pipeline(release.registry_dir, FRAME, pipeline)
    split = Split(save_frame(FRAME.head(200), tmp_path / "train.arrow"),
                  save_frame(FRAME, tmp_path / "test.arrow"))
    return version, TrainedModel(pipeline, "2026-01-01T00:00:00+00:00", 200, 0.1), split


def _history(release: Release) -> list[tuple]:
    return [(r.kind, r.environment, r.version, r.champion_before, r.champion_after)
            for r in release.registry.releases("toy")]


def test_a_candidate_passes_staging_then_reaches_production_as_the_same_version(
    release, staging, tmp_path,
):
    spec = _spec(release, staging.base_url, min_requests=1, on_too_few="pass")
    version, trained, split = _candidate(release, toy_pipeline(FRAME, 25), tmp_path)
    assert release_to_environments(version, trained, split, spec, None, "test", 60) is None
    assert staging.state()["traffic"] == {"blue": 100}
    assert release.client.state()["traffic"] == {"blue": 100}  # production not touched yet
    assert release.registry.alias("toy") == 1

    plan = deploy_model(version, spec)
    smoke_test(plan, trained, split, spec)
    assert promote(plan, version, spec, "test") == {"green": 100, "blue": 0}
    staged = staging.state()["deployments"]["blue"]
    live = release.client.state()["deployments"]["green"]
    assert staged["model_url"] == live["model_url"] == version.url
    rows = frame_to_request(FRAME[FEATURES].iloc[:40])
    answers = [c.score(rows) for c in (staging, release.client)]
    assert answers[0]["model_version"] == answers[1]["model_version"] == str(version.version)
    assert np.array_equal(answers[0]["predictions"], answers[1]["predictions"])
    assert release.registry.alias("toy") == version.version
    assert _history(release) == [
        ("promotion", "staging", version.version, 1, 1),
        ("promotion", "production", version.version, 1, version.version),
    ]


def test_a_candidate_failing_in_staging_leaves_production_untouched(release, staging, tmp_path):
    spec = _spec(release, staging.base_url, on_too_few="pass")
    version, trained, split = _candidate(release, faulty_pipeline(FRAME), tmp_path)
    with pytest.raises(DeploymentError) as info:
        release_to_environments(version, trained, split, spec, None, "test", 60)
    message = str(info.value)
    assert message.startswith(f"toy v{version.version} failed in environment 'staging'; "
                              "production untouched: endpoint POST /score answered 500")
    assert staging.state()["deployments"] == {}  # the failed candidate is removed
    production = release.client.state()
    assert production["traffic"] == {"blue": 100} and set(production["deployments"]) == {"blue"}
    assert release.registry.alias("toy") == 1
    assert _history(release) == []


def test_a_quiet_staging_hold_fails_the_release_before_production(release, staging, tmp_path):
    spec = _spec(release, staging.base_url, min_requests=1, on_too_few="rollback")
    version, trained, split = _candidate(release, toy_pipeline(FRAME, 25), tmp_path)
    with pytest.raises(DeploymentError) as info:
        release_to_environments(version, trained, split, spec, None, "test", 60)
    message = str(info.value)
    assert "failed in environment 'staging'" in message
    assert "no traffic was restored" in message  # staging's first model: nothing to go back to
    assert "answered 0 requests in 1 s, fewer than min_requests 1" in message
    assert release.client.state()["traffic"] == {"blue": 100}
    assert release.registry.alias("toy") == 1
    assert _history(release) == [("rollback", "staging", version.version, 1, 1)]


def test_an_environment_that_does_not_answer_moves_nothing(release, tmp_path):
    silent = f"http://127.0.0.1:{free_port()}"
    spec = _spec(release, silent)
    version, trained, split = _candidate(release, toy_pipeline(FRAME, 25), tmp_path)
    with pytest.raises(DeploymentError) as info:
        release_to_environments(version, trained, split, spec, None, "test", 60)
    assert str(info.value).startswith(
        f"nothing deployed, traffic unchanged: environment 'staging' ({silent}) does not "
        f"answer: endpoint at {silent} is not reachable")
    assert release.client.state()["traffic"] == {"blue": 100}
    assert set(release.client.state()["deployments"]) == {"blue"}
    assert release.registry.alias("toy") == 1


def test_a_version_whose_digest_changed_after_staging_does_not_reach_production(
    release, staging, tmp_path,
):
    spec = _spec(release, staging.base_url, on_too_few="pass")
    version, trained, split = _candidate(release, toy_pipeline(FRAME, 25), tmp_path)
    passed = dataclasses.replace(version, manifest={**version.manifest, "model_sha256": "0" * 64})
    with pytest.raises(DeploymentError, match=r"toy v2 in the registry has model digest "
                       r"[0-9a-f]{16}, not the 0{16} that passed staging; production untouched"):
        release_to_environments(passed, trained, split, spec, None, "test", 60)
    assert release.client.state()["traffic"] == {"blue": 100}
    assert release.registry.alias("toy") == 1
