"""Batch scoring on Azure ML: a batch endpoint and a model batch deployment from the spec.

The deployment runs deployments/azureml/batch_score.py on the spec's compute cluster
(`batch.azureml`): each mini-batch of input files goes through the same scoring core as a local
batch run (`mlops.batch.driver`), with the same output columns, taken from the spec's batch
section through the ``MLOPS_BATCH_PLAN`` environment variable. Imports azure.ai.ml (seconds):
imported only where an Azure ML batch deployment is built.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from azure.ai.ml.entities import (
    BatchEndpoint,
    BatchRetrySettings,
    CodeConfiguration,
    ModelBatchDeployment,
    ModelBatchDeploymentSettings,
    ResourceConfiguration,
)

from mlops.azureml.shipping import DEPLOY_DIR, PROJECT_ROOT
from mlops.batch.driver import PLAN_VARIABLE, plan_settings
from mlops.batch.partitions import OutputPlan
from mlops.core.errors import SpecError
from mlops.core.spec import PipelineSpec

BATCH_SCORE_PY = DEPLOY_DIR / "batch_score.py"
OUTPUT_FILE = "predictions.csv"


def batch_endpoint_entity(name: str, description: str = "") -> BatchEndpoint:
    """A batch endpoint (Microsoft Entra tokens authenticate its jobs; it has no keys)."""
    return BatchEndpoint(name=name, description=description or f"Batch scoring of {name}")


def batch_deployment_entity(
    spec: PipelineSpec, plan: OutputPlan, *, name: str, endpoint_name: str, model: str,
    environment: str, code_dir: Path, tags: dict[str, str] | None = None,
) -> ModelBatchDeployment:
    """The model batch deployment of `model` (an ``azureml:name:version`` reference).

    Args:
        plan: What every output row holds (`tasks.batch.output_plan`); its output URL and
            model are the job's.

    Raises:
        SpecError: the spec has no ``batch.azureml`` section.
    """
    target = spec.batch.azureml
    if target is None:
        raise SpecError(f"spec '{spec.model_name}' has no batch.azureml section: name the "
                        "compute cluster (batch.azureml.compute) to deploy it for batch scoring")
    deployment = ModelBatchDeployment(
        name=name, endpoint_name=endpoint_name, model=model, environment=environment,
        code_configuration=CodeConfiguration(code=str(code_dir),
                                             scoring_script=BATCH_SCORE_PY.name),
        compute=target.compute, tags=tags or {},
        resources=ResourceConfiguration(instance_count=target.instance_count),
        settings=ModelBatchDeploymentSettings(
            mini_batch_size=target.mini_batch_size,
            max_concurrency_per_instance=target.max_concurrency_per_instance,
            output_action=target.output_action,
            output_file_name=OUTPUT_FILE if target.output_action == "append_row" else None,
            retry_settings=BatchRetrySettings(max_retries=target.max_retries,
                                              timeout=target.timeout),
            error_threshold=target.error_threshold, logging_level="info",
            environment_variables={PLAN_VARIABLE: plan_settings(plan)},
        ),
    )
    deployment._validate()  # the SDK's own checks, as for the online deployment
    return deployment


def stage_batch_code(dest: Path) -> Path:
    """Write the batch deployment's code folder: the driver, ``mlops/``, ``serving/``."""
    dest.mkdir(parents=True, exist_ok=False)
    shutil.copy2(BATCH_SCORE_PY, dest / BATCH_SCORE_PY.name)
    for package in ("mlops", "serving"):
        shutil.copytree(PROJECT_ROOT / package, dest / package,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest
