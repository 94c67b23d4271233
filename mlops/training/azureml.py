"""The train step as an Azure ML command job on a compute cluster (spec ``training.backend``).

The job gets the spec (JSON) and the training rows (the features stage's Arrow file) as inputs,
runs ``deployments/azureml/train.py`` in the pinned environment, and writes the fitted pipeline
to its output. This module submits it, waits (logging each change of status), downloads the
output and reads the model back with the same checks as a bundle: the sha256 the job recorded,
then ``serving.bundle.load_model`` (the allow-list of exact type names, probe rows built from the
feature dtypes the job recorded). A failed, cancelled or overdue job is a `TrainingError` naming the
job, so ``az ml job stream -n NAME`` shows what happened.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from enum import Enum
from pathlib import Path
from typing import Any

from azure.ai.ml import MLClient

from mlops.azureml.client import azure_errors, ensure_environment, workspace_client
from mlops.azureml.entities import TRAIN_OUTPUT, training_job
from mlops.azureml.shipping import TRAINED_INFO_FILE, TRAINED_MODEL_FILE, stage_training_code
from mlops.core.errors import TrainingError
from mlops.core.lineage import code_version
from mlops.core.settings import Settings
from mlops.core.spec import PipelineSpec
from mlops.data.frames import FrameRef
from serving.bundle import BundleLoadError, load_model, parse_features, sha256_bytes

logger = logging.getLogger(__name__)

COMPLETED = "Completed"
# Azure ML's terminal job states (azure.ai.ml's RunHistoryConstants.TERMINAL_STATUSES).
TERMINAL = {COMPLETED, "Failed", "Canceled", "NotResponding", "Paused"}


def train_on_azureml(
    spec: PipelineSpec, train: FrameRef, settings: Settings
) -> tuple[Any, float, str]:
    """Fit the spec's pipeline on `train` in a command job; the fitted pipeline, fit seconds and
    the job's name (registered with the model, so studio shows where it came from)."""
    pipeline, info = run_training_job(
        workspace_client(spec.azureml), spec, Path(train.path),
        work_dir=settings.state_dir / "azureml" / "jobs",
    )
    return pipeline, float(info["fit_seconds"]), str(info["job_name"])


def submit_training_job(ml_client: MLClient, spec: PipelineSpec, train_file: Path) -> str:
    """Upload code and inputs, submit the job and return its name."""
    environment = ensure_environment(ml_client, spec.azureml, TrainingError)
    with tempfile.TemporaryDirectory(prefix="mlops-train-") as staging:
        spec_json = Path(staging) / "spec.json"
        spec_json.write_text(spec.model_dump_json())
        with azure_errors(TrainingError, f"submitting the training job of '{spec.name}'"):
            job = training_job(
                spec, code_dir=stage_training_code(Path(staging) / "code"), spec_json=spec_json,
                train_file=train_file, environment=environment,
                tags={"mlops.spec_hash": spec.spec_hash(), "mlops.code_version": code_version()},
            )
            submitted = ml_client.jobs.create_or_update(job)
    logger.info("Submitted training job %s on '%s': %s", submitted.name, spec.training.compute,
                submitted.studio_url)
    return str(submitted.name)


def _status(job: Any) -> str:
    """The job's state as Azure ML spells it (the SDK may hand back an enum)."""
    status = job.status
    return str(status.value if isinstance(status, Enum) else status)


def wait_for_job(ml_client: MLClient, name: str, timeout_s: float, poll_s: float) -> Any:
    """Poll the job until it ends; cancel it if it outlasts `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    status = None
    while True:
        with azure_errors(TrainingError, f"reading training job {name}"):
            job = ml_client.jobs.get(name)
        if _status(job) != status:
            status = _status(job)
            logger.info("Training job %s: %s", name, status)
        if status in TERMINAL:
            return job
        if time.monotonic() > deadline:
            with azure_errors(TrainingError, f"cancelling training job {name}"):
                ml_client.jobs.begin_cancel(name)
            raise TrainingError(
                f"training job {name} still {status} after {timeout_s / 60:.0f} min "
                "(training.timeout_minutes); it was cancelled"
            )
        time.sleep(poll_s)


def read_trained_model(folder: Path, task: str) -> tuple[Any, dict[str, Any]]:
    """The pipeline a job wrote, refused if its digest, a type in it or its answers are wrong."""
    try:
        info = json.loads((folder / TRAINED_INFO_FILE).read_text())
        data = (folder / TRAINED_MODEL_FILE).read_bytes()
    except (FileNotFoundError, ValueError) as exc:
        raise TrainingError(f"training job output in {folder} is incomplete: {exc}") from exc
    if not isinstance(info, dict) or sha256_bytes(data) != info.get("model_sha256"):
        recorded = info.get("model_sha256") if isinstance(info, dict) else None
        raise TrainingError(
            f"the model downloaded from the training job does not match the sha256 the job "
            f"recorded ({str(recorded)[:12]}...); refusing it"
        )
    try:
        features = parse_features(info.get("features"), f"{folder / TRAINED_INFO_FILE}")
        model = load_model(data, features, task, f"training job output {folder}")
    except BundleLoadError as exc:
        raise TrainingError(f"training job output refused: {exc}") from exc
    return model, info


def run_training_job(
    ml_client: MLClient, spec: PipelineSpec, train_file: Path, *, work_dir: Path,
    poll_s: float = 30.0,
) -> tuple[Any, dict[str, Any]]:
    """Submit, wait, download, check: the fitted pipeline and what the job recorded."""
    name = submit_training_job(ml_client, spec, train_file)
    job = wait_for_job(ml_client, name, spec.training.timeout_minutes * 60.0, poll_s)
    if _status(job) != COMPLETED:
        raise TrainingError(
            f"training job {name} ended {_status(job)}; its logs: az ml job stream -n {name} "
            f"({job.studio_url})"
        )
    target = Path(work_dir) / name
    shutil.rmtree(target, ignore_errors=True)
    with azure_errors(TrainingError, f"downloading the output of training job {name}"):
        ml_client.jobs.download(name, download_path=str(target), output_name=TRAIN_OUTPUT)
    pipeline, info = read_trained_model(target / "named-outputs" / TRAIN_OUTPUT, spec.task)
    info["job_name"] = name
    logger.info("Training job %s fitted %d rows in %.1f s", name, info["train_rows"],
                info["fit_seconds"])
    return pipeline, info
