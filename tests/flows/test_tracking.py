"""Every training run is an MLflow run: what a promoted, a rejected and a retained run recorded,
read back through MLflow's own client, and the link between a registered version and its run."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from mlflow.tracking import MlflowClient

from flows.drift_check import drift_check
from flows.training import training
from mlops.core.errors import ModelQualityError
from mlops.registry.local import LocalRegistry
from mlops.tracking.local import local_target
from mlops.tracking.process import LOG, RecorderProcess
from tests.conftest import write_spec
from tools.datasets import make_churn

pytestmark = [pytest.mark.slow, pytest.mark.service, pytest.mark.usefixtures("prefect_server")]

WEAK = {"model.params": {"max_iter": 3, "max_depth": 1, "learning_rate": 0.05}}
STRONG = {"model.params": {"max_iter": 120, "learning_rate": 0.08}}
DRIFT = {"age": 1.0, "monthly_charges": 0.6, "tenure_months": 0.5, "region": 1.0,
         "contract": 0.8}


def _mlflow_run(client: MlflowClient, experiment: str, state, wait_s: float = 120):
    """The MLflow run of a flow run, found by the Prefect flow run id it carries, once it has
    ended: a run that ended before its store was open is recorded by a process of its own."""
    flow_run_id = state.state_details.flow_run_id
    deadline = time.monotonic() + wait_s
    while True:
        found = client.search_experiments(filter_string=f"name = '{experiment}'")
        runs = client.search_runs(
            [found[0].experiment_id],
            filter_string=f"tags.`mlops.prefect_flow_run_id` = '{flow_run_id}'",
        ) if found else []
        if runs and runs[0].info.status != "RUNNING" or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert len(runs) == 1, f"{len(runs)} MLflow runs for flow run {flow_run_id}"
    assert runs[0].info.status != "RUNNING", f"run {runs[0].info.run_id} never ended"
    return runs[0]


def _artifacts(client: MlflowClient, run_id: str) -> set[str]:
    return {f.path for folder in client.list_artifacts(run_id)
            for f in (client.list_artifacts(run_id, folder.path) if folder.is_dir else [folder])}


def _champion_version(client: MlflowClient, name: str) -> str:
    return client.get_model_version_by_alias(name, "champion").tags["mlops.version"]


def test_promoted_rejected_and_retained_runs(use_stack, churn_data, tmp_path):
    changes = {"name": "tracked", "evaluation.minimum": 0.5}
    weak = write_spec(tmp_path, "weak", {**changes, **WEAK})
    strong = write_spec(tmp_path, "strong", {**changes, **STRONG})
    registry = LocalRegistry(use_stack.registry_location)
    client = MlflowClient(local_target(use_stack.state_dir).uri)

    first = training(spec_path=weak, data_url=churn_data, return_state=True)
    assert first.result()["outcome"] == "promoted"
    run = _mlflow_run(client, "tracked", first)
    manifest = registry.get("tracked", 1).manifest
    assert manifest["mlflow_run_id"] == run.info.run_id
    assert run.info.status == "FINISHED"
    tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
    assert tags["mlops.outcome"] == "promoted" and tags["mlops.decision"] == "promote"
    assert (tags["mlops.model_name"], tags["mlops.model_version"]) == ("tracked", "1")
    for key in ("data_fingerprint", "spec_hash", "code_version"):
        assert tags[f"mlops.{key}"] == manifest[key], key
    assert str(first.state_details.flow_run_id) in tags["mlops.prefect_flow_run_url"]
    assert params["model.params.max_iter"] == "3" and params["split.seed"] == "42"
    assert any(k.startswith("features.") for k in params), params
    assert metrics["candidate.roc_auc"] == pytest.approx(manifest["metrics"]["roc_auc"])
    assert not any(k.startswith("champion.") for k in metrics)
    assert {"evaluation/metrics.json", "evaluation/evaluation.png", "evaluation/decision.md",
            "spec/spec.json"} <= _artifacts(client, run.info.run_id)
    assert _champion_version(client, "tracked") == "1"

    rejected = training(spec_path=strong, data_url=churn_data, require_approval=True,
                        approval_timeout_s=1, return_state=True)
    assert rejected.result()["outcome"] == "rejected"
    run = _mlflow_run(client, "tracked", rejected)
    tags, metrics = run.data.tags, run.data.metrics
    assert tags["mlops.outcome"] == "rejected" and tags["mlops.decision"] == "promote"
    assert "no approval" in tags["mlops.outcome_reason"]
    assert tags["mlops.model_version"] == "2"
    assert registry.get("tracked", 2).manifest["mlflow_run_id"] == run.info.run_id
    assert tags["mlops.champion_version"] == "1"
    assert metrics["bootstrap.low"] <= metrics["bootstrap.diff"] <= metrics["bootstrap.high"]
    assert metrics["delta.margin.roc_auc"] == pytest.approx(
        metrics["candidate.roc_auc"] - metrics["champion.roc_auc"])
    assert _champion_version(client, "tracked") == "1"

    retained = training(spec_path=weak, data_url=churn_data, return_state=True)
    assert retained.result() == {"outcome": "retained", "champion": 1}
    run = _mlflow_run(client, "tracked", retained)
    tags = run.data.tags
    assert tags["mlops.outcome"] == "retained" and tags["mlops.decision"] == "retain"
    assert "champion v1 itself" in tags["mlops.reasons"]
    assert "mlops.model_version" not in tags
    assert registry.versions("tracked") == [1, 2]


@pytest.fixture
def hanging_store() -> Iterator[str]:
    """An HTTP 'server' that accepts connections and never answers: a store that hangs."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                held.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


class _Refusing(BaseHTTPRequestHandler):
    """MLflow's REST API as a server that opens runs and refuses every batch of records."""

    def _reply(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # experiments/get-by-name
        self._reply(200, {"experiment": {"experiment_id": "1", "name": "refused",
                                         "lifecycle_stage": "active"}})

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path.endswith("/runs/create"):
            self._reply(200, {"run": {"info": {
                "run_id": "r1", "run_uuid": "r1", "experiment_id": "1", "status": "RUNNING",
                "lifecycle_stage": "active", "start_time": 1}, "data": {}}})
        else:
            self._reply(500, {"error_code": "INTERNAL_ERROR",
                              "message": "store refused the batch"})

    def log_message(self, *args) -> None:
        """Quiet: the test reads the flow's warnings, not the server's lines."""


@pytest.fixture
def refusing_store() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Refusing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelname == "WARNING" and "MLflow" in r.getMessage()]


def test_a_store_that_hangs_or_raises_changes_nothing(
    use_stack, churn_data, tmp_path, hanging_store, refusing_store, caplog
):
    base = {**WEAK, "evaluation.minimum": 0.5}
    registry = LocalRegistry(use_stack.registry_location)

    rows = make_churn(50, seed=5).drop(columns=["churned"])

    def shipped(name: str, tracking: dict) -> tuple[dict, dict, list]:
        spec = write_spec(tmp_path, name, {**base, "name": name, "tracking": tracking})
        result = training(spec_path=spec, data_url=churn_data, return_state=True).result()
        # one endpoint serves every model here: the traffic table is not the model's own
        outcome = {k: result[k] for k in ("outcome", "version")}
        manifest = registry.get(name, 1).manifest
        predictions = registry.load(name, 1).model.predict_proba(rows)[:, 1].tolist()
        return outcome, manifest, predictions

    def same_model(manifest: dict, other: dict) -> None:
        # what differs by run: the time, the ids, the name (and with it the spec hash), and the
        # model file's bytes (its zip entries carry the time they were written)
        varies = {"trained_at", "flow_run_id", "mlflow_run_id", "model_sha256", "spec_name",
                  "spec_hash", "model_name", "registered_at"}
        assert {k: v for k, v in manifest.items() if k not in varies} == {
            k: v for k, v in other.items() if k not in varies}

    result, manifest, predictions = shipped("untracked", {"enabled": False})
    assert result["outcome"] == "promoted" and manifest["mlflow_run_id"] is None
    assert _warnings(caplog) == []

    hung, hung_manifest, hung_predictions = shipped(
        "hung", {"uri": hanging_store, "timeout_s": 1})
    assert (hung, hung_predictions) == (result, predictions)
    same_model(hung_manifest, manifest)
    assert hung_manifest["mlflow_run_id"] is None
    # the store's own timeout, or the run's wait for it when the process opens it late
    assert any("tracking stopped while starting run" in w or "not started within 1 s" in w
               for w in _warnings(caplog)), _warnings(caplog)

    caplog.clear()
    raised, raised_manifest, raised_predictions = shipped(
        "refused", {"uri": refusing_store, "timeout_s": 30})
    assert (raised, raised_predictions) == (result, predictions)
    same_model(raised_manifest, manifest)
    assert raised_manifest["mlflow_run_id"]  # the run started; only its records were refused
    assert any("store refused the batch" in w for w in _warnings(caplog))


def test_a_drift_check_is_a_run_with_scores_and_report(use_stack, churn_data, tmp_path):
    spec = write_spec(tmp_path, "drifty", {"name": "drifty", **WEAK,
                                           "evaluation.minimum": 0.5,
                                           "drift": {"drift_share": 0.3}})
    assert training(spec_path=spec, data_url=churn_data).get("outcome") == "promoted"
    current = tmp_path / "current.parquet"
    make_churn(2000, seed=7, drift=DRIFT).to_parquet(current)

    state = drift_check(spec_path=spec, data_url=str(current), retrain=False, return_state=True)
    result = state.result()
    assert result["outcome"] == "drift"
    client = MlflowClient(local_target(use_stack.state_dir).uri)
    run = _mlflow_run(client, "drifty-drift", state)
    tags, metrics = run.data.tags, run.data.metrics
    assert tags["mlops.kind"] == "drift" and tags["mlops.outcome"] == "drift"
    assert tags["mlops.dataset_drift"] == "true" and tags["mlops.champion_version"] == "1"
    assert set(result["drifted_columns"]) <= {k.removeprefix("drift.") for k in metrics}
    assert metrics["drift.age"] > 0 and metrics["drift.drifted_share"] >= 0.3
    assert {"drift/report.html", "drift/drift.json"} <= _artifacts(client, run.info.run_id)


def test_a_run_that_ends_before_its_store_opens_is_recorded_by_another_process(
    use_stack, churn_data, tmp_path, monkeypatch
):
    spec = write_spec(tmp_path, "handed", {"name": "handed", **WEAK, "evaluation.minimum": 0.5})
    assert training(spec_path=spec, data_url=churn_data)["outcome"] == "promoted"
    opening = threading.Event()
    real_opened = RecorderProcess.opened

    def slow_opened(self):
        opening.wait(60)  # as importing mlflow does, on a re-run that takes less
        return real_opened(self)

    monkeypatch.setattr(RecorderProcess, "opened", slow_opened)
    again = training(spec_path=spec, data_url=churn_data, return_state=True)
    assert again.result() == {"outcome": "retained", "champion": 1}
    opening.set()
    client = MlflowClient(local_target(use_stack.state_dir).uri)
    run = _mlflow_run(client, "handed", again)
    assert run.data.tags["mlops.outcome"] == "retained" and run.info.status == "FINISHED"
    assert run.data.params["model.params.max_iter"] == "3"
    folder = use_stack.state_dir / "mlflow"
    assert not list(folder.glob("handoff/*.json"))  # the recorder process took them all
    assert "Recorded" in (folder / LOG).read_text()


def test_a_run_that_fails_after_training_is_a_failed_run_with_its_error(
    use_stack, churn_data, tmp_path
):
    spec = write_spec(tmp_path, "floored", {"name": "floored", **WEAK,
                                            "evaluation.minimum": 0.99})
    state = training(spec_path=spec, data_url=churn_data, return_state=True)
    assert state.is_failed()
    with pytest.raises(ModelQualityError):
        state.result()
    client = MlflowClient(local_target(use_stack.state_dir).uri)
    run = _mlflow_run(client, "floored", state)
    assert run.info.status == "FAILED"
    assert run.data.tags["mlops.outcome"] == "failed"
    assert run.data.tags["mlops.error"].startswith("ModelQualityError: first model of 'floored'")
    assert run.data.params["model.params.max_iter"] == "3"
    assert LocalRegistry(use_stack.registry_location).versions("floored") == []
