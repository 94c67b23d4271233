"""The drift check end to end on the session's Prefect server: verdicts, report, artifacts, and
retraining started through a real deployment of the training flow, exactly once.

No worker runs, so a started training run stays SCHEDULED: that is what "queued" means here.
Each test uses its own model name, so runs from other tests never count as "the same model".
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prefect import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
    DeploymentFilter,
    DeploymentFilterName,
)
from prefect.client.schemas.objects import StateType
from prefect.deployments import run_deployment
from prefect.states import Cancelled, Completed, Failed

from flows.drift_check import drift_check
from flows.training import training
from mlops.core.errors import DataValidationError
from mlops.core.settings import Settings
from mlops.core.spec import load_spec
from mlops.endpoint.payloads import frame_to_request
from mlops.model.bundle import dump_model, feature_dtypes
from mlops.registry.local import LocalRegistry
from tasks.retraining import DRIFT_TAG
from tests.conftest import ROOT, spec_endpoint, write_spec
from tools.datasets import make_churn

pytestmark = [pytest.mark.slow, pytest.mark.service, pytest.mark.usefixtures("prefect_server")]

DRIFT = {"age": 1.0, "monthly_charges": 0.6, "tenure_months": 0.5, "region": 1.0,
         "contract": 0.8}
DEPLOYMENT = "training/training-manual"


@pytest.fixture(scope="module")
def training_deployment(prefect_server) -> str:
    """The training flow registered as a deployment on the test server (no work pool: its runs
    are only scheduled, which is all the drift check needs to see)."""
    training.to_deployment(name=DEPLOYMENT.split("/")[1]).apply()
    return DEPLOYMENT


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("MLOPS_STATE_DIR", str(tmp_path / "state"))
    return Settings(state_dir=tmp_path / "state")


def _spec(tmp_path: Path, name: str, **drift) -> str:
    return write_spec(tmp_path, name, {"name": name, "drift": {"drift_share": 0.3, **drift}})


def _champion(state: Settings, name: str, rows: int = 3000) -> int:
    """Register a champion with a reference sample, as the training flow's register stage does
    (the drift check reads only the alias and the sample; the model is the spec's, kept small)."""
    from mlops.model.features import build_pipeline

    reference = make_churn(rows, seed=41)
    features = [c for c in reference.columns if c not in ("customer_id", "signup_date",
                                                           "churned")]
    spec = load_spec(ROOT / "configs" / "churn.yaml", {"model.params": {"max_iter": 5}})
    model = build_pipeline(spec).fit(reference[features], reference.churned)
    registry = LocalRegistry(state.registry_location)
    version = registry.register(
        name, model_bytes=dump_model(model), features=feature_dtypes(reference, features),
        lineage={"target": "churned", "task": "classification"},
        reference=reference[[*features, "churned"]],
    )
    registry.set_alias(name, version.version)
    return version.version


def _batch(tmp_path: Path, rows: int, seed: int, drift=None, drop=()) -> str:
    path = tmp_path / f"batch-{seed}.parquet"
    make_churn(rows, seed=seed, drift=drift).drop(columns=list(drop)).to_parquet(path)
    return str(path)


def _training_runs(spec_path: str) -> list:
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=["training-manual"]))
        )
    return [r for r in runs if r.parameters.get("spec_path") == spec_path]


def _artifact_keys(state) -> set[str]:
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(
            flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id])
        ))
    return {a.key for a in artifacts}


def test_no_drift_starts_nothing_and_reports(state, tmp_path, training_deployment):
    spec = _spec(tmp_path, "drift-none")
    _champion(state, "drift-none")
    run = drift_check(spec_path=spec, data_url=_batch(tmp_path, 2000, seed=42),
                      training_deployment=training_deployment, return_state=True)
    result = run.result()
    assert result["outcome"] == "no-drift" and result["drifted_columns"] == []
    assert result["training_run"] is None and _training_runs(spec) == []
    report = Path(result["report_url"])
    assert report.name == "report.html" and report.parent.parent.name == "drift"
    assert "<html" in report.read_text()[:2000].lower()
    assert (report.parent / "drift.json").exists()
    assert _artifact_keys(run) >= {"drift-none-drift", "drift-none-drift-columns",
                                   "drift-none-drift-report"}


def test_drift_starts_training_once_while_it_is_queued(state, tmp_path, training_deployment):
    spec = _spec(tmp_path, "drift-once")
    _champion(state, "drift-once")
    current = _batch(tmp_path, 2000, seed=43, drift=DRIFT)

    first = drift_check(spec_path=spec, data_url=current, training_deployment=training_deployment)
    assert first["outcome"] == "drift"
    assert sorted(first["drifted_columns"]) == sorted(DRIFT)
    [queued] = _training_runs(spec)
    assert str(queued.id) == first["training_run"]
    assert queued.state.type == StateType.SCHEDULED
    assert queued.parameters["reason"] == "drift: 5 of 13 columns drifted (share 0.38 >= 0.3)"
    assert queued.parameters["report_url"] == first["report_url"]

    second = drift_check(spec_path=spec, data_url=current, training_deployment=training_deployment)
    assert second["outcome"] == "drift" and second["training_run"] is None
    assert f"training run {queued.name} (Scheduled" in second["detail"] or (
        f"training run {queued.name} (Late" in second["detail"]
    )
    assert len(_training_runs(spec)) == 1

    with get_client(sync_client=True) as client:
        client.set_flow_run_state(queued.id, Cancelled(), force=True)
    third = drift_check(spec_path=spec, data_url=current, training_deployment=training_deployment)
    assert third["training_run"] not in (None, first["training_run"])
    assert len(_training_runs(spec)) == 2


def test_a_run_scheduled_for_later_does_not_block(state, tmp_path, training_deployment):
    """The nightly schedule always has future runs; only due or started ones count."""
    spec = _spec(tmp_path, "drift-later")
    _champion(state, "drift-later")
    later = run_deployment(DEPLOYMENT, parameters={"spec_path": spec}, timeout=0,
                           scheduled_time=datetime.now(UTC) + timedelta(hours=20))
    result = drift_check(spec_path=spec, data_url=_batch(tmp_path, 2000, seed=44, drift=DRIFT),
                         training_deployment=training_deployment)
    assert result["training_run"] not in (None, str(later.id))


def test_another_models_queued_run_does_not_block(state, tmp_path, training_deployment):
    other = _spec(tmp_path, "drift-other")
    run_deployment(DEPLOYMENT, parameters={"spec_path": other}, timeout=0)
    spec = _spec(tmp_path, "drift-mine")
    _champion(state, "drift-mine")
    result = drift_check(spec_path=spec, data_url=_batch(tmp_path, 2000, seed=45, drift=DRIFT),
                         training_deployment=training_deployment)
    assert result["training_run"] is not None


def test_small_window_skips_with_the_reason(state, tmp_path, training_deployment):
    spec = _spec(tmp_path, "drift-small")
    _champion(state, "drift-small")
    run = drift_check(spec_path=spec, data_url=_batch(tmp_path, 300, seed=46, drift=DRIFT),
                      training_deployment=training_deployment, return_state=True)
    assert run.is_completed()
    assert run.message.startswith("skipped: only 300 rows in data at ")
    assert "needs at least 1000 (drift.min_current_rows)" in run.message
    assert run.result()["outcome"] == "skipped" and _training_runs(spec) == []
    assert "drift-small-drift" in _artifact_keys(run)


def test_no_champion_skips(state, tmp_path, training_deployment):
    spec = _spec(tmp_path, "drift-nochamp")
    run = drift_check(spec_path=spec, data_url=_batch(tmp_path, 2000, seed=47),
                      training_deployment=training_deployment, return_state=True)
    assert run.is_completed()
    assert "model 'drift-nochamp' has no champion yet" in run.message


def test_missing_columns_fail_the_run_as_a_data_error(state, tmp_path, training_deployment):
    spec = _spec(tmp_path, "drift-missing")
    _champion(state, "drift-missing")
    current = _batch(tmp_path, 2000, seed=48, drift=DRIFT, drop=("age", "region"))
    run = drift_check(spec_path=spec, data_url=current, training_deployment=training_deployment,
                      return_state=True)
    assert run.is_failed()
    with pytest.raises(DataValidationError, match=r"lacks columns \['age', 'region'\]"):
        run.result()
    assert _training_runs(spec) == []


def test_drifted_requests_to_the_endpoint_start_retraining(use_stack, churn_data, tmp_path,
                                                          training_deployment):
    """The loop: a trained champion serves, drifted requests arrive, the drift check reads
    the endpoint's inference log and starts the training deployment."""
    spec = write_spec(tmp_path, "drift-loop", {
        "name": "drift-loop", "evaluation.minimum": 0.5, "drift": {"drift_share": 0.3},
        "model.params": {"max_iter": 20, "learning_rate": 0.1},
    })
    assert training(spec_path=spec, data_url=churn_data)["outcome"] == "promoted"
    requests = make_churn(1200, seed=49, drift=DRIFT).drop(columns=["churned"])
    client = spec_endpoint(spec, use_stack)
    for start in range(0, len(requests), 300):
        client.score(frame_to_request(requests.iloc[start:start + 300]))
    # the model's own endpoint on the server, and its own inference log
    assert client.endpoint == "drift-loop-endpoint"
    _wait_for_collected(use_stack, "drift-loop-endpoint", "drift-loop", rows=1200)

    result = drift_check(spec_path=spec, training_deployment=training_deployment)
    assert result["outcome"] == "drift" and set(DRIFT) <= set(result["drifted_columns"])
    [queued] = _training_runs(spec)
    assert str(queued.id) == result["training_run"]


def _wait_for_collected(settings: Settings, endpoint: str, model: str, rows: int,
                        timeout_s: float = 60) -> None:
    """The endpoint writes its log every few seconds; wait until it holds `rows` rows."""
    import pyarrow.parquet as pq

    folder = settings.state_dir / "inference" / endpoint
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        seen = sum(
            pq.read_table(p, columns=["model_name"]).column(0).to_pylist().count(model)
            for p in folder.rglob("*.parquet")
        )
        if seen >= rows:
            return
        time.sleep(0.5)
    raise AssertionError(f"the endpoint collected fewer than {rows} rows in {timeout_s} s")


# The drift cooldown: after a drift-triggered training run, a drift that persists starts no
# other one for drift.cooldown_hours. Runs are ended or placed hours back through the API, so
# no test waits for a clock.

def _end(run_id: str, end_state) -> None:
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(run_id, end_state, force=True)


def _summary(model: str) -> str:
    with get_client(sync_client=True) as client:
        [artifact] = client.read_latest_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[f"{model}-drift"])))
    return artifact.data


def drift_check_run(spec: str, current: str, deployment: str) -> dict:
    return drift_check(spec_path=spec, data_url=current, training_deployment=deployment)


def _cooling_spec(tmp_path, file: str, model: str, hours: float) -> str:
    return write_spec(tmp_path, file, {"name": model, "drift": {
        "drift_share": 0.3, "cooldown_hours": hours}})


def test_a_finished_drift_run_holds_off_the_next(state, tmp_path, training_deployment):
    spec = _cooling_spec(tmp_path, "cool", "drift-cool", 24)
    _champion(state, "drift-cool")
    current = _batch(tmp_path, 2000, seed=51, drift=DRIFT)
    first = drift_check_run(spec, current, training_deployment)
    assert first["training_run"] is not None
    _end(first["training_run"], Completed())

    second = drift_check_run(spec, current, training_deployment)
    assert second["outcome"] == "drift" and second["training_run"] is None
    assert "retraining not started: cooldown until" in second["detail"]
    assert "drift.cooldown_hours=24" in second["detail"]
    assert "cooldown until" in _summary("drift-cool")  # the run's summary artifact says so
    assert len(_training_runs(spec)) == 1

    # a failed drift-triggered run holds it off too: a lasting failure is not retried hourly
    _end(first["training_run"], Failed())
    assert drift_check_run(spec, current, training_deployment)["training_run"] is None


def test_no_cooldown_when_it_is_zero(state, tmp_path, training_deployment):
    spec = _cooling_spec(tmp_path, "nocool", "drift-nocool", 0)
    _champion(state, "drift-nocool")
    current = _batch(tmp_path, 2000, seed=52, drift=DRIFT)
    first = drift_check_run(spec, current, training_deployment)
    _end(first["training_run"], Completed())
    assert drift_check_run(spec, current, training_deployment)["training_run"] is not None


def test_the_cooldown_ends_after_its_hours(state, tmp_path, training_deployment):
    """A drift-triggered run expected four hours ago: a 5-hour cooldown holds, 3 hours do not."""
    five = _cooling_spec(tmp_path, "cool5", "drift-old", 5)
    three = _cooling_spec(tmp_path, "cool3", "drift-old", 3)
    _champion(state, "drift-old")
    old = run_deployment(DEPLOYMENT, parameters={"spec_path": five}, timeout=0, tags=[DRIFT_TAG],
                         scheduled_time=datetime.now(UTC) - timedelta(hours=4))
    _end(old.id, Completed())
    current = _batch(tmp_path, 2000, seed=53, drift=DRIFT)
    assert drift_check_run(five, current, training_deployment)["training_run"] is None
    assert drift_check_run(three, current, training_deployment)["training_run"] is not None
