"""The deploy protocol of DESIGN.md on the Azure ML backends, driven by the real tasks.

register_model, deploy_model, smoke_test and promote run as Prefect task runs with both
'azureml' backends, the real SDK talking HTTP to the REST stand-in, bundles and code on Azurite,
each deployment's score.py under Azure ML's inference server. The requests show the order of the
protocol: the idle slot gets the candidate at 0%, the smoke test calls it by name through the
scoring URI, traffic moves, champion moves; on any failure traffic stays (or goes back) where it
was and champion does not move.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from prefect.settings import PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW, temporary_settings
from threadpoolctl import threadpool_limits

from mlops.core.errors import DeploymentError, EndpointError, ProvisioningError
from mlops.core.settings import get_settings
from mlops.core.spec import load_spec
from mlops.endpoint.backend import endpoint_for
from mlops.endpoint.payloads import frame_to_request
from mlops.registry.backend import registry_for
from tasks.deploy import deploy_model, promote, smoke_test
from tasks.registry import register_model
from tests.azureml.conftest import AZURE
from tests.azureml.scoring_standin import ScoringService
from tests.conftest import ROOT
from tests.tasks._stages import Stages, run_stages, write_spec
from tools.datasets import write_churn

pytestmark = [pytest.mark.slow, pytest.mark.service, pytest.mark.azurite,
              pytest.mark.usefixtures("prefect_server")]

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
def scoring(use_workspace, azurite, tmp_path) -> Iterator[ScoringService]:
    if not (ROOT / ".venv-azmlinfsrv" / "bin" / "azmlinfsrv").exists():
        pytest.fail(".venv-azmlinfsrv is missing: make azmlinfsrv-env")
    with ScoringService(use_workspace, azurite.connection_string, tmp_path) as service:
        yield service


@pytest.fixture
def azure(stages, use_workspace, scoring, state) -> Iterator:
    """The same spec with both Azure ML backends (same spec hash: same cached stages)."""
    spec = load_spec(stages.spec_path, {**AZURE, "data.url": stages.spec.data.url})
    assert spec.spec_hash() == stages.spec.spec_hash()
    with (temporary_settings({PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW: "ignore"}),
          threadpool_limits(limits=1, user_api="openmp")):
        yield spec


def _release(stages: Stages, spec, ws):
    """One release, as the flow runs it; the protocol's steps it sent."""
    since = len(ws.sent)
    version = register_model(stages.trained, stages.split, stages.data, spec, stages.evaluation,
                             stages.raw.rows)
    plan = deploy_model(version, spec)
    smoke_test(plan, stages.trained, stages.split, spec)
    promote(plan, version, spec)
    return _steps(ws, since)


def _steps(ws, since: int = 0) -> list[str]:
    """What was sent since `since`, in words; a model write that adds a release-history tag
    (`mlops.release.<time>`) is "history"."""
    words, registered, entries = [], set(), {}
    for i, (method, path, body) in enumerate(ws.sent):
        parts = path.strip("/").split("/")
        word = None
        if method == "SCORE":
            word = f"score {body}"
        elif parts[0] == "models":
            tags = body["properties"].get("tags") or {}
            count = sum(k.startswith("mlops.release.") for k in tags)
            if path not in registered:
                registered.add(path)
                word = f"register v{parts[3]}"
            elif count > entries.get(path, 0):
                word = f"history v{parts[3]}"
            else:
                word = f"{'champion' if 'champion' in tags else 'untag'} v{parts[3]}"
            entries[path] = count
        elif parts[0] == "onlineEndpoints" and len(parts) == 2:
            live = {k: v for k, v in (body["properties"].get("traffic") or {}).items() if v}
            word = f"traffic {dict(sorted(live.items()))}"
        elif parts[0] == "onlineEndpoints" and method == "PUT":
            model = body["properties"]["model"].split("/models/")[1].replace("/versions/", ":")
            word = f"create {parts[3]} {model}"
        elif parts[0] == "onlineEndpoints":
            word = f"delete {parts[3]}"
        elif parts[0] == "environments":
            word = "environments"
        if i >= since and word:
            words.append(word)
    return words


def _champion(spec) -> int | None:
    return registry_for(spec, get_settings()).alias(spec.model_name)


def _served_version(stages, spec) -> str:
    rows = stages.split.test
    from mlops.data.frames import load_frame

    features = load_frame(rows, [c.name for c in spec.feature_columns]).head(3)
    return endpoint_for(spec, get_settings()).score(frame_to_request(features))["model_version"]


def test_three_releases_follow_the_blue_green_protocol(stages, azure, use_workspace, ml_client):
    ws = use_workspace
    assert _release(stages, azure, ws) == [
        "register v1", "traffic {}", "environments", "create blue churn:1", "score blue",
        "traffic {'blue': 100}", "champion v1", "history v1",
    ]
    assert _release(stages, azure, ws) == [
        "register v2", "create green churn:2", "score green", "traffic {'green': 100}",
        "champion v2", "untag v1", "history v2",
    ]
    assert _release(stages, azure, ws) == [  # the release before last leaves only now
        "register v3", "delete blue", "create blue churn:3", "score blue",
        "traffic {'blue': 100}", "champion v3", "untag v2", "history v3",
    ]
    assert ws.traffic(ENDPOINT) == {"blue": 100}
    assert _champion(azure) == 3
    holders = [v for v in ("1", "2", "3")
               if "champion" in ml_client.models.get(name="churn", version=v).tags]
    assert holders == ["3"]
    assert _served_version(stages, azure) == "3"


def test_traffic_moves_in_the_spec_steps(stages, azure, use_workspace):
    _release(stages, azure, use_workspace)
    stepped = azure.model_copy(update={"endpoint": azure.endpoint.model_copy(
        update={"traffic_steps": [10, 50]})})
    assert _release(stages, stepped, use_workspace)[3:] == [
        "traffic {'blue': 90, 'green': 10}", "traffic {'blue': 50, 'green': 50}",
        "traffic {'green': 100}", "champion v2", "untag v1", "history v2",
    ]


@pytest.mark.parametrize("failure", ["router refused", "bad request", "predictions differ"])
def test_a_failed_smoke_test_removes_the_candidate_and_moves_nothing(
    stages, azure, use_workspace, scoring, monkeypatch, failure
):
    """'bad request' is finding 1: our score.py's 4xx body made the SDK's invoke raise a bare
    AttributeError, which the smoke test did not catch, so the candidate stayed."""
    ws = use_workspace
    _release(stages, azure, ws)
    import tasks.deploy

    if failure == "router refused":
        scoring.failures.append((502, b'{"message": "upstream request timeout"}'))
        expected = (EndpointError, "HTTP 502: upstream request timeout")
    elif failure == "bad request":
        monkeypatch.setattr(tasks.deploy, "frame_to_request",
                            lambda rows: frame_to_request(rows.iloc[:, 1:]))
        expected = (EndpointError, "HTTP 4.*(?i:missing|column)")
    else:
        monkeypatch.setattr(tasks.deploy, "_same_predictions", lambda served, offline: False)
        expected = (DeploymentError, "predictions differ")
    since = len(ws.sent)
    version = register_model(stages.trained, stages.split, stages.data, azure,
                             stages.evaluation, stages.raw.rows)
    plan = deploy_model(version, azure)
    with pytest.raises(expected[0], match=expected[1]):
        smoke_test(plan, stages.trained, stages.split, azure)
    assert _steps(ws, since) == [
        "register v2", "create green churn:2", "score green", "delete green",
    ]
    assert ws.traffic(ENDPOINT) == {"blue": 100}
    assert _champion(azure) == 1
    assert _served_version(stages, azure) == "1"


def test_a_deployment_that_does_not_provision_publishes_its_logs_and_moves_nothing(
    stages, azure, use_workspace
):
    from prefect.artifacts import Artifact

    ws = use_workspace
    _release(stages, azure, ws)
    ws.fail_provisioning(ENDPOINT, "green", "ImageBuildFailure", "conda could not solve",
                         logs={"StorageInitializer": "model downloaded",
                               "InferenceServer": "ModuleNotFoundError: No module 'skops'"})
    since = len(ws.sent)
    version = register_model(stages.trained, stages.split, stages.data, azure,
                             stages.evaluation, stages.raw.rows)
    state = deploy_model(version, azure, return_state=True)
    with pytest.raises(ProvisioningError, match="(?s)conda could not solve.*No module 'skops'"):
        state.result()
    assert _steps(ws, since) == ["register v2", "create green churn:2"]  # no retry
    artifact = Artifact.get("churn-green-provisioning-logs")
    assert artifact is not None and "No module 'skops'" in artifact.data
    assert ws.traffic(ENDPOINT) == {"blue": 100} and _champion(azure) == 1
    assert _release(stages, azure, ws)[:3] == [  # the next release clears the failed one
        "register v3", "delete green", "create green churn:3",
    ]
    assert _champion(azure) == 3


@pytest.mark.parametrize("broken", ["traffic", "champion"])
def test_a_failed_promotion_restores_traffic_and_keeps_the_champion(
    stages, azure, use_workspace, broken
):
    ws = use_workspace
    _release(stages, azure, ws)
    since = len(ws.sent)
    version = register_model(stages.trained, stages.split, stages.data, azure,
                             stages.evaluation, stages.raw.rows)
    plan = deploy_model(version, azure)
    smoke_test(plan, stages.trained, stages.split, azure)
    if broken == "traffic":
        ws.fail_operation(f"/onlineEndpoints/{ENDPOINT}$", "InternalServerError",
                          "The operation failed")
        failed_step = []
    else:
        ws.fail("PUT", r"/models/churn/versions/2$", 409, "UserError",
                "Conflict: the model version was changed by another request")
        failed_step = []  # refused by the service, so never stored
    with pytest.raises(DeploymentError, match=r"traffic was restored to \{'blue': 100"):
        promote(plan, version, azure)
    assert _steps(ws, since) == [
        "register v2", "create green churn:2", "score green", "traffic {'green': 100}",
        *(["champion v2"] if broken == "champion" else failed_step), "traffic {'blue': 100}",
    ]
    assert ws.traffic(ENDPOINT) == {"blue": 100}
    assert _champion(azure) == 1
    assert _served_version(stages, azure) == "1"


def test_rollback_is_one_traffic_change(stages, azure, use_workspace):
    ws = use_workspace
    _release(stages, azure, ws)
    _release(stages, azure, ws)
    since = len(ws.sent)
    endpoint_for(azure, get_settings()).set_traffic({"blue": 100, "green": 0})
    assert _steps(ws, since) == ["traffic {'blue': 100}"]
    assert _served_version(stages, azure) == "1"
    assert (ENDPOINT, "green") in ws.deployments


def test_evaluation_reads_the_champion_back_from_azure_ml(stages, azure, use_workspace, tmp_path):
    from dataclasses import replace

    from tasks.evaluation import evaluate_vs_champion

    _release(stages, azure, use_workspace)
    same = evaluate_vs_champion(stages.trained, stages.split, stages.data, azure, str(tmp_path))
    assert not same.decision.promote and "champion v1 itself" in same.decision.reasons[0]
    other_data = replace(stages.data, fingerprint="another-fingerprint")
    judged = evaluate_vs_champion(stages.trained, stages.split, other_data, azure, str(tmp_path))
    assert judged.champion_version == 1  # downloaded, digest-checked, scored on the holdout
    assert judged.champion_metrics == judged.candidate_metrics  # the same model
    assert not judged.decision.promote
