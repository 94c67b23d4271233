"""The deploy protocol of DESIGN.md on the Azure ML backends, driven by the real tasks.

register_model, deploy_model, smoke_test and promote run as Prefect task runs with both
'azureml' backends; the recording stand-in for MLClient shows the order of what they send:
the idle slot gets the candidate at 0%, the smoke test calls it through invoke by name, traffic
moves, champion moves; on any failure traffic stays (or goes back) where it was and champion
does not move.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect.settings import PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW, temporary_settings
from threadpoolctl import threadpool_limits

from mlops.core.errors import DeploymentError, EndpointError
from mlops.core.settings import get_settings
from mlops.core.spec import load_spec
from mlops.endpoint.backend import endpoint_for
from mlops.endpoint.payloads import frame_to_request
from mlops.registry.backend import registry_for
from tasks.deploy import deploy_model, promote, smoke_test
from tasks.registry import register_model
from tests.azureml.conftest import AZURE
from tests.azureml.fake_mlclient import http_error
from tests.tasks._stages import Stages, run_stages, write_spec
from tools.datasets import write_churn

pytestmark = [pytest.mark.slow, pytest.mark.service, pytest.mark.usefixtures("prefect_server")]

ENDPOINT = AZURE["endpoint.name"]


@pytest.fixture(scope="module")
def stages(prefect_server, tmp_path_factory) -> Iterator[Stages]:
    """The churn stages up to the evaluation of a first model, once for the module."""
    root = tmp_path_factory.mktemp("azml-protocol")
    write_churn(str(root / "churn"), n_rows=900, partitions=1, seed=5)
    spec_path = write_spec(root, "churn", {
        "model.params": {"max_iter": 20, "random_state": 42}, "evaluation.minimum": 0.5,
    })
    with (pytest.MonkeyPatch.context() as patch,
          temporary_settings({PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW: "ignore"}),
          threadpool_limits(limits=1, user_api="openmp")):
        patch.setenv("MLOPS_STATE_DIR", str(root / "state"))
        stages = run_stages(spec_path, str(root / "churn"), until="evaluate_vs_champion",
                            run_dir=str(root / "run"))
        stages.spec_path = spec_path
        yield stages


@pytest.fixture
def azure(stages, use_fake, state) -> Iterator:
    """The same spec with both Azure ML backends (same spec hash: same cached stages)."""
    spec = load_spec(stages.spec_path, {**AZURE, "data.url": stages.spec.data.url})
    assert spec.spec_hash() == stages.spec.spec_hash()
    with (temporary_settings({PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW: "ignore"}),
          threadpool_limits(limits=1, user_api="openmp")):
        yield spec


def _release(stages: Stages, spec, fake):
    """One release, as the flow runs it; the protocol's steps it sent."""
    since = len(fake.writes())
    version = register_model(stages.trained, stages.split, stages.data, spec, stages.evaluation,
                             stages.raw.rows)
    plan = deploy_model(version, spec)
    smoke_test(plan, stages.trained, stages.split, spec)
    promote(plan, version, spec)
    return _steps(fake, since)


def _steps(fake, since: int = 0) -> list[str]:
    """The writes since `since`, in words; a model write that adds a release-history tag
    (`mlops.release.<time>`) is "history"."""
    words, entries = [], {}
    for i, (op, d) in enumerate(fake.writes()):
        word = op.split(".")[0]
        if op == "models.create_or_update":
            count = sum(k.startswith("mlops.release.") for k in d["tags"])
            holds = "champion" in d["tags"]
            if count > entries.get(d["version"], 0):
                word = f"history v{d['version']}"
            else:
                word = (f"register v{d['version']}" if d["new"]
                        else f"{'champion' if holds else 'untag'} v{d['version']}")
            entries[d["version"]] = count
        elif op == "online_endpoints.begin_create_or_update":
            word = f"traffic {dict(sorted(d['traffic'].items()))}"
        elif op == "online_deployments.begin_create_or_update":
            word = f"create {d['name']} {d['model']}"
        elif op == "online_deployments.begin_delete":
            word = f"delete {d['name']}"
        elif op == "online_endpoints.invoke":
            word = f"invoke {d['deployment']}"
        if i >= since:
            words.append(word)
    return words


def _champion(spec) -> int | None:
    return registry_for(spec, get_settings()).alias(spec.model_name)


def _served_version(stages, spec) -> str:
    rows = stages.split.test
    from mlops.data.frames import load_frame

    features = load_frame(rows, [c.name for c in spec.feature_columns]).head(3)
    return endpoint_for(spec, get_settings()).score(frame_to_request(features))["model_version"]


def test_three_releases_follow_the_blue_green_protocol(stages, azure, use_fake):
    fake = use_fake
    assert _release(stages, azure, fake) == [
        "register v1", "traffic {}", "environments", "create blue churn:1", "invoke blue",
        "traffic {'blue': 100}", "champion v1", "history v1",
    ]
    assert _release(stages, azure, fake) == [
        "register v2", "create green churn:2", "invoke green", "traffic {'green': 100}",
        "champion v2", "untag v1", "history v2",
    ]
    assert _release(stages, azure, fake) == [  # the release before last leaves only now
        "register v3", "delete blue", "create blue churn:3", "invoke blue",
        "traffic {'blue': 100}", "champion v3", "untag v2", "history v3",
    ]
    assert fake.traffic(ENDPOINT) == {"blue": 100}
    assert _champion(azure) == 3
    holders = [v for v in ("1", "2", "3")
               if "champion" in fake.models.get(name="churn", version=v).tags]
    assert holders == ["3"]
    assert _served_version(stages, azure) == "3"


def test_traffic_moves_in_the_spec_steps(stages, azure, use_fake):
    _release(stages, azure, use_fake)
    stepped = azure.model_copy(update={"endpoint": azure.endpoint.model_copy(
        update={"traffic_steps": [10, 50]})})
    assert _release(stages, stepped, use_fake)[3:] == [
        "traffic {'blue': 90, 'green': 10}", "traffic {'blue': 50, 'green': 50}",
        "traffic {'green': 100}", "champion v2", "untag v1", "history v2",
    ]


@pytest.mark.parametrize("failure", ["invoke refused", "predictions differ"])
def test_a_failed_smoke_test_removes_the_candidate_and_moves_nothing(
    stages, azure, use_fake, monkeypatch, failure
):
    fake = use_fake
    _release(stages, azure, fake)
    if failure == "invoke refused":
        fake.fail("online_endpoints.invoke", http_error(502, "upstream timed out"),
                  deployment="green")
        expected = (EndpointError, "HTTP 502.*upstream timed out")
    else:
        import tasks.deploy

        monkeypatch.setattr(tasks.deploy, "_same_predictions", lambda served, offline: False)
        expected = (DeploymentError, "predictions differ")
    since = len(fake.writes())
    version = register_model(stages.trained, stages.split, stages.data, azure,
                             stages.evaluation, stages.raw.rows)
    plan = deploy_model(version, azure)
    with pytest.raises(expected[0], match=expected[1]):
        smoke_test(plan, stages.trained, stages.split, azure)
    assert _steps(fake, since) == [
        "register v2", "create green churn:2", "invoke green", "delete green",
    ]
    assert fake.traffic(ENDPOINT) == {"blue": 100}
    assert _champion(azure) == 1
    assert _served_version(stages, azure) == "1"


def test_a_deployment_that_does_not_provision_moves_nothing(stages, azure, use_fake):
    fake = use_fake
    _release(stages, azure, fake)
    fake.fail("online_deployments.begin_create_or_update",
              http_error(400, "ImageBuildFailure: conda could not solve"), at_result=True)
    since = len(fake.writes())
    version = register_model(stages.trained, stages.split, stages.data, azure,
                             stages.evaluation, stages.raw.rows)
    state = deploy_model(version, azure, return_state=True)
    with pytest.raises(DeploymentError, match="conda could not solve.*get-logs -n green"):
        state.result()
    assert _steps(fake, since) == ["register v2", "create green churn:2"]  # no retry
    assert fake.traffic(ENDPOINT) == {"blue": 100} and _champion(azure) == 1
    assert _release(stages, azure, fake)[:3] == [  # the next release clears the failed one
        "register v3", "delete green", "create green churn:3",
    ]
    assert _champion(azure) == 3


@pytest.mark.parametrize("broken", ["traffic", "champion"])
def test_a_failed_promotion_restores_traffic_and_keeps_the_champion(
    stages, azure, use_fake, broken
):
    fake = use_fake
    _release(stages, azure, fake)
    if broken == "traffic":
        fake.fail("online_endpoints.begin_create_or_update", http_error(500, "InternalError"),
                  at_result=True, traffic={"green": 100})
        failed_step = []
    else:
        fake.fail("models.create_or_update", http_error(409, "Conflict: tag write raced"),
                  version="2", new=False)
        failed_step = ["champion v2"]
    since = len(fake.writes())
    version = register_model(stages.trained, stages.split, stages.data, azure,
                             stages.evaluation, stages.raw.rows)
    plan = deploy_model(version, azure)
    smoke_test(plan, stages.trained, stages.split, azure)
    with pytest.raises(DeploymentError, match=r"traffic was restored to \{'blue': 100"):
        promote(plan, version, azure)
    assert _steps(fake, since) == [
        "register v2", "create green churn:2", "invoke green", "traffic {'green': 100}",
        *failed_step, "traffic {'blue': 100}",
    ]
    assert fake.traffic(ENDPOINT) == {"blue": 100}
    assert _champion(azure) == 1
    assert _served_version(stages, azure) == "1"


def test_rollback_is_one_traffic_change(stages, azure, use_fake):
    fake = use_fake
    _release(stages, azure, fake)
    _release(stages, azure, fake)
    since = len(fake.writes())
    endpoint_for(azure, get_settings()).set_traffic({"blue": 100, "green": 0})
    assert _steps(fake, since) == ["traffic {'blue': 100}"]
    assert _served_version(stages, azure) == "1"
    assert Path(fake.service.deployments[(ENDPOINT, "green")]["code"], "score.py").exists()


def test_evaluation_reads_the_champion_back_from_azure_ml(stages, azure, use_fake, tmp_path):
    from dataclasses import replace

    from tasks.evaluation import evaluate_vs_champion

    _release(stages, azure, use_fake)
    same = evaluate_vs_champion(stages.trained, stages.split, stages.data, azure, str(tmp_path))
    assert not same.decision.promote and "champion v1 itself" in same.decision.reasons[0]
    other_data = replace(stages.data, fingerprint="another-fingerprint")
    judged = evaluate_vs_champion(stages.trained, stages.split, other_data, azure, str(tmp_path))
    assert judged.champion_version == 1  # downloaded, digest-checked, scored on the holdout
    assert judged.champion_metrics == judged.candidate_metrics  # the same model
    assert not judged.decision.promote
    assert [op for op, _ in use_fake.calls].count("models.download") == 1
