"""Training as an Azure ML command job, the real SDK over HTTP to the REST stand-in: the job the
backend submits runs the shipped ``train.py`` for real, in the shipped environment
(``.venv-azmlinfsrv``, built from the same lock as conda.yml), its code, inputs and outputs on
Azurite, and the model that comes back is the one a local fit gives."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import pytest
from azure.ai.ml import command

from mlops.core.errors import TrainingError
from mlops.core.spec import PipelineSpec
from mlops.data.frames import save_frame
from mlops.data.validation import validate_frame
from mlops.model.features import fit_pipeline, split_frame
from mlops.training.azureml import read_trained_model, run_training_job, wait_for_job
from tests.azureml.conftest import azure_spec
from tools.datasets import make_churn

pytestmark = pytest.mark.azurite
CLUSTER = {"training.backend": "azureml", "training.compute": "cpu-cluster",
           "model.params": {"max_iter": 15, "random_state": 42}}


def _training_rows(spec: PipelineSpec, folder: Path):
    frame = validate_frame(make_churn(600, seed=21), spec)
    train, _ = split_frame(frame, spec)
    columns = [*(c.name for c in spec.feature_columns), spec.target]
    return train[columns], save_frame(train, folder / "train.arrow")


def _job_put(workspace) -> dict:
    return next(body for method, path, body in workspace.sent
                if method == "PUT" and path.startswith("/jobs/"))


@pytest.mark.slow
def test_the_job_fits_in_the_shipped_environment_what_a_local_fit_gives(
    shipped_python, ml_client, workspace, tmp_path
):
    spec = azure_spec(**CLUSTER)
    frame, ref = _training_rows(spec, tmp_path)
    workspace.python = shipped_python
    pipeline, info = run_training_job(ml_client, spec, Path(ref.path),
                                      work_dir=tmp_path / "jobs", poll_s=0)
    local = fit_pipeline(spec, frame)
    features = frame[[c.name for c in spec.feature_columns]]
    np.testing.assert_array_equal(pipeline.predict_proba(features), local.predict_proba(features))
    assert info["train_rows"] == len(frame)
    assert info["job_name"] in workspace.jobs  # what the model is registered with (finding 6)
    sent = _job_put(workspace)["properties"]
    assert sent["computeId"].endswith("/computes/cpu-cluster")
    assert "/environments/mlops-sklearn/versions/" in sent["environmentId"]
    assert sorted(sent["inputs"]) == ["spec", "train"]
    assert ("POST", "/datastores/workspaceblobstore/listSecrets") in workspace.requests


@pytest.mark.slow
def test_a_fit_that_fails_in_the_job_is_a_training_error(
    shipped_python, ml_client, workspace, tmp_path
):
    spec = azure_spec(**{**CLUSTER, "model.params": {"max_iter": -3}})
    _, ref = _training_rows(spec, tmp_path)
    workspace.python = shipped_python
    with pytest.raises(TrainingError, match="ended Failed.*az ml job stream -n") as failed:
        run_training_job(ml_client, spec, Path(ref.path), work_dir=tmp_path / "jobs", poll_s=0)
    (name,) = workspace.jobs
    assert name in str(failed.value)
    assert "max_iter" in workspace.job_logs[name]  # the job's own error, in its log
    assert ("GET", "/discovery") not in workspace.requests  # nothing downloaded


def test_a_compute_the_workspace_lacks_is_refused_by_the_service(ml_client, workspace, tmp_path):
    spec = azure_spec(**{**CLUSTER, "training.compute": "gpu-cluster"})
    _, ref = _training_rows(spec, tmp_path)
    with pytest.raises(TrainingError, match="HTTP 400.*Compute gpu-cluster not found"):
        run_training_job(ml_client, spec, Path(ref.path), work_dir=tmp_path / "jobs", poll_s=0)


def _queued_job(ml_client, tmp_path: Path) -> str:
    (tmp_path / "train.py").write_text("")
    job = command(command="python train.py", environment="azureml:e:1", compute="cpu-cluster",
                  code=str(tmp_path))
    from azure.ai.ml.entities import Environment

    ml_client.environments.create_or_update(Environment(name="e", version="1",
                                                        image="python:3.11-slim"))
    return ml_client.jobs.create_or_update(job).name  # not run: the workspace has no python


def test_waiting_logs_each_status_and_cancels_an_overdue_job(
    ml_client, workspace, tmp_path, caplog
):
    name = _queued_job(ml_client, tmp_path)
    workspace.job_statuses = ["Queued", "Queued", "Running", "Completed"]
    with caplog.at_level(logging.INFO, logger="mlops.training.azureml"):
        assert wait_for_job(ml_client, name, timeout_s=60, poll_s=0).status == "Completed"
    assert [r.getMessage() for r in caplog.records if r.name == "mlops.training.azureml"] == [
        f"Training job {name}: {s}" for s in ("Queued", "Running", "Completed")]

    workspace.job_statuses = ["Running"]
    with pytest.raises(TrainingError, match="still Running.*cancelled"):
        wait_for_job(ml_client, name, timeout_s=0, poll_s=0)
    assert ("POST", f"/jobs/{name}/cancel") in workspace.requests
    assert workspace.jobs[name]["properties"]["status"] in {"CancelRequested", "Canceled"}


def test_a_job_output_that_is_not_what_the_job_recorded_is_refused(tmp_path, toy):
    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "model.skops").write_bytes(toy.model_bytes)
    info = {"model_sha256": hashlib.sha256(toy.model_bytes).hexdigest(), "train_rows": 1,
            "fit_seconds": 0.1, "features": toy.features}
    (folder / "training.json").write_text(json.dumps(info))
    model, _ = read_trained_model(folder, "classification")
    assert type(model).__name__ == "Pipeline"

    (folder / "model.skops").write_bytes(toy.model_bytes + b"x")
    with pytest.raises(TrainingError, match="does not match the sha256"):
        read_trained_model(folder, "classification")

    hostile = sio.dumps(FunctionTransformer(func=json.loads))
    (folder / "model.skops").write_bytes(hostile)
    info["model_sha256"] = hashlib.sha256(hostile).hexdigest()
    (folder / "training.json").write_text(json.dumps(info))
    with pytest.raises(TrainingError, match="allow-list.*json.loads"):
        read_trained_model(folder, "classification")

    info["model_sha256"] = hashlib.sha256(toy.model_bytes).hexdigest()
    (folder / "model.skops").write_bytes(toy.model_bytes)
    (folder / "training.json").write_text(json.dumps(info))
    read_trained_model(folder, "classification")
    info["features"] = toy.features[1:]  # the model cannot answer rows without its first column
    (folder / "training.json").write_text(json.dumps(info))
    with pytest.raises(TrainingError, match="failed on 3 probe rows"):
        read_trained_model(folder, "classification")

    (folder / "training.json").unlink()
    with pytest.raises(TrainingError, match="incomplete"):
        read_trained_model(folder, "classification")


@pytest.mark.slow
@pytest.mark.service
def test_the_train_task_hands_the_fit_to_the_cluster(shipped_python, use_workspace, state,
                                                     prefect_server, tmp_path):
    from prefect.settings import PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW, temporary_settings

    from mlops.model.results import Split
    from tasks.training import train_model
    from tests.tasks._stages import fresh_ref

    use_workspace.python = shipped_python
    spec = azure_spec(**CLUSTER)
    frame, ref = _training_rows(spec, tmp_path)
    with temporary_settings({PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW: "ignore"}):
        trained = train_model(Split(ref, ref), fresh_ref(), spec)
    features = frame[[c.name for c in spec.feature_columns]]
    np.testing.assert_array_equal(trained.pipeline.predict(features),
                                  fit_pipeline(spec, frame).predict(features))
    (job,) = use_workspace.jobs
    assert trained.job_name == job  # the registry names it on the model (finding 6)
