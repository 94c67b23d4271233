"""The Azure ML entities the backends send, built with the SDK's own classes and loaders.

Endpoint, deployment and environment start from the YAML files in ``deployments/azureml`` (the
files a person applies with ``az ml ... create -f``); what the spec and the run decide goes in as
``params_override``, so it passes the same schema validation as the files themselves.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from azure.ai.ml import (
    Input,
    Output,
    command,
    load_environment,
    load_online_deployment,
    load_online_endpoint,
)
from azure.ai.ml.constants import AssetTypes
from azure.ai.ml.entities import (
    Command,
    Environment,
    ManagedOnlineDeployment,
    ManagedOnlineEndpoint,
    Model,
)

from mlops.azureml.shipping import DEPLOYMENT_YML, ENDPOINT_YML, ENVIRONMENT_YML, SCORE_PY
from mlops.core.errors import SpecError
from mlops.core.spec import PipelineSpec
from mlops.core.spec.targets import AzureMLSpec, EndpointSpec

AZUREML_REF = "azureml:"
CHAMPION_TAG = "champion"
# Immutable facts of a version (properties cannot change once the version exists).
PROPERTY_KEYS = ("format_version", "model_sha256", "data_fingerprint", "spec_hash", "code_version")
# Searchable facts (tags); metrics become `metric.<name>`.
TAG_KEYS = (
    "task", "target", "estimator", "spec_name", "trained_at", "train_rows", "holdout_rows",
    "flow_run_id", "previous_champion", "sklearn_version", "data_asset",
)
TRAIN_OUTPUT = "model"
WORKER_COUNT = "WORKER_COUNT"  # the inference server's worker processes (environment variable)
TRAIN_COMMAND = (
    "python train.py --spec ${{inputs.spec}} --train ${{inputs.train}} "
    "--out ${{outputs." + TRAIN_OUTPUT + "}}"
)


class JobModel(Model):
    """A model asset that names the job which fitted it (``jobName``, studio's lineage link).

    azure-ai-ml 1.35.2 reads ``jobName`` back but never sends ``Model.job_name``; the REST model
    has the field, so it is set on what the SDK sends.
    """

    def _to_rest_object(self) -> Any:
        rest = super()._to_rest_object()
        rest.properties.job_name = self.job_name
        return rest


def model_ref(name: str, version: int, registry: str | None = None) -> str:
    """How a deployment names a model version: in the workspace, or in an Azure ML registry."""
    if registry:
        return f"azureml://registries/{registry}/models/{name}/versions/{version}"
    return f"{AZUREML_REF}{name}:{version}"


def model_entity(name: str, version: int, folder: Path, manifest: dict[str, Any]) -> Model:
    """A custom-model asset for a bundle folder: lineage and metrics as tags, digests as
    properties (the manifest's own sha256 too, so a downloaded manifest can be checked)."""
    manifest_bytes = (folder / "manifest.json").read_bytes()
    properties = {f"mlops.{k}": str(manifest[k]) for k in PROPERTY_KEYS if k in manifest}
    properties["mlops.manifest_sha256"] = hashlib.sha256(manifest_bytes).hexdigest()
    tags = {k: str(manifest[k]) for k in TAG_KEYS if manifest.get(k) is not None}
    if manifest.get("data_url"):
        tags["data_url"] = str(manifest["data_url"]).split("?", 1)[0]  # never a SAS token
    for metric, value in (manifest.get("metrics") or {}).items():
        tags[f"metric.{metric}"] = f"{value:.6g}" if isinstance(value, float) else str(value)
    model_class = JobModel if manifest.get("training_job") else Model
    return model_class(
        name=name,
        version=str(version),
        path=str(folder),
        type=AssetTypes.CUSTOM_MODEL,
        description=f"{manifest.get('task', 'model')} bundle of spec '{manifest.get('spec_name')}'",
        tags=tags,
        properties=properties,
        job_name=manifest.get("training_job"),  # studio's lineage link to the training job
    )


def environment_entity(target: AzureMLSpec) -> Environment:
    """The environment YAML as an entity whose version is a digest of its content."""
    source = Path(target.environment) if target.environment else ENVIRONMENT_YML
    env = load_environment(source)
    if env.build is not None or not env.image:
        raise SpecError(
            f"environment {source}: give an image (and a conda_file); for a Docker build "
            "context, register it yourself and set azureml.environment to 'azureml:name:version'"
        )
    content = json.dumps(
        {"image": env.image, "conda_file": env.conda_file, "os_type": env.os_type},
        sort_keys=True, default=str,
    )
    env.version = hashlib.sha256(content.encode()).hexdigest()[:16]
    return env


def endpoint_entity(name: str) -> ManagedOnlineEndpoint:
    return load_online_endpoint(ENDPOINT_YML, params_override=[{"name": name}])


def deployment_entity(
    *, slot: str, endpoint_name: str, model: str, environment: str, code_dir: Path,
    endpoint: EndpointSpec, tags: dict[str, str] | None = None,
) -> ManagedOnlineDeployment:
    """deployment.yml with this release's slot, model, environment and staged code folder."""
    overrides: list[dict[str, Any]] = [
        {"name": slot},
        {"endpoint_name": endpoint_name},
        {"model": model},
        {"environment": environment},
        {"code_configuration.code": str(code_dir)},
        {"code_configuration.scoring_script": SCORE_PY.name},
    ]
    if endpoint.instance_type:
        overrides.append({"instance_type": endpoint.instance_type})
    if endpoint.instance_count:
        overrides.append({"instance_count": endpoint.instance_count})
    if tags:
        overrides.append({"tags": tags})
    overrides += _request_overrides(endpoint)
    deployment = load_online_deployment(DEPLOYMENT_YML, params_override=overrides)
    deployment._validate()  # the SDK's own name and scale-settings checks
    _check_request_settings(deployment)
    return deployment


def _request_overrides(endpoint: EndpointSpec) -> list[dict[str, Any]]:
    """The spec's request settings and worker count, where it gives them."""
    overrides: list[dict[str, Any]] = []
    if endpoint.worker_count:
        overrides.append({f"environment_variables.{WORKER_COUNT}": str(endpoint.worker_count)})
    for field in ("max_concurrent_requests_per_instance", "request_timeout_ms"):
        if getattr(endpoint, field):
            overrides.append({f"request_settings.{field}": getattr(endpoint, field)})
    return overrides


def _check_request_settings(deployment: ManagedOnlineDeployment) -> None:
    """Fewer concurrent requests than workers would leave workers idle behind Azure's 429s.

    Raises:
        SpecError: naming both values and the spec fields that set them.
    """
    workers = int((deployment.environment_variables or {}).get(WORKER_COUNT, 1))
    settings = deployment.request_settings
    admitted = settings.max_concurrent_requests_per_instance if settings else None
    if admitted is not None and admitted < workers:
        raise SpecError(
            f"endpoint.max_concurrent_requests_per_instance {admitted} is below "
            f"endpoint.worker_count {workers}: {workers - admitted} worker(s) would never get a "
            "request; admit at least one request per worker (docs/azure.md)"
        )


def training_job(
    spec: PipelineSpec, *, code_dir: Path, spec_json: Path, train_file: Path, environment: str,
    tags: dict[str, str] | None = None,
) -> Command:
    """The train step as a command job on the spec's compute cluster."""
    return command(
        display_name=f"train {spec.name}",
        experiment_name=f"mlops-{spec.name}",
        description=f"Training stage of spec '{spec.name}' ({spec.model.estimator})",
        code=str(code_dir),
        command=TRAIN_COMMAND,
        inputs={
            "spec": Input(type=AssetTypes.URI_FILE, path=str(spec_json)),
            "train": Input(type=AssetTypes.URI_FILE, path=str(train_file)),
        },
        outputs={TRAIN_OUTPUT: Output(type=AssetTypes.URI_FOLDER)},
        environment=environment,
        compute=spec.training.compute,
        tags=tags or {},
    )
