"""The spec's backend targets: registry, endpoint, training, and the Azure ML workspace."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field

from mlops.core.spec.columns import _Strict


class RegistrySpec(_Strict):
    backend: Literal["local", "azureml"] = "local"
    url: str | None = Field(None, description="Local registry URL; default: state folder.")
    model_name: str | None = Field(None, description="Default: the spec's name.")
    azureml_registry: str | None = Field(
        None,
        description="Backend 'azureml': an Azure ML registry (shared by workspaces) to keep the "
        "models in; default: the workspace's own models.",
    )


class EndpointSpec(_Strict):
    backend: Literal["local", "azureml"] = "local"
    url: str | None = Field(None, description="Local endpoint URL; default from settings.")
    name: str | None = Field(None, description="Endpoint name; default: '<spec name>-endpoint'.")
    traffic_steps: list[Annotated[int, Field(gt=0, le=100)]] = Field(
        default_factory=lambda: [100], description="Traffic shares the candidate goes through."
    )
    smoke_rows: int = Field(20, ge=1, le=1000)
    instance_type: str | None = Field(
        None, description="Backend 'azureml': VM size; default: deployments/azureml/deployment.yml."
    )
    instance_count: int | None = Field(
        None, ge=1, description="Backend 'azureml': instances; default: deployment.yml."
    )
    deploy_timeout_minutes: int = Field(
        90, ge=1, description="Backend 'azureml': longest wait for a deployment to provision."
    )
    worker_count: int | None = Field(
        None, ge=1, le=64,
        description="Backend 'azureml': inference server processes per instance (WORKER_COUNT), "
        "one per vCPU; default: deployment.yml (sized in docs/azure.md).",
    )
    max_concurrent_requests_per_instance: int | None = Field(
        None, ge=1, le=1000,
        description="Backend 'azureml': requests an instance takes at once before Azure answers "
        "429; at least worker_count; default: deployment.yml.",
    )
    request_timeout_ms: int | None = Field(
        None, ge=1000, le=180_000,
        description="Backend 'azureml': longest a request may take, queueing included; "
        "default: deployment.yml.",
    )


class TrainingSpec(_Strict):
    backend: Literal["local", "azureml"] = Field(
        "local", description="Fit here, or as an Azure ML command job on a compute cluster."
    )
    compute: str | None = Field(None, description="Backend 'azureml': the compute cluster's name.")
    timeout_minutes: int = Field(
        120, ge=1, description="Backend 'azureml': longest wait for the job to finish."
    )


class AzureMLSpec(_Strict):
    """The Azure ML workspace of the 'azureml' backends. Never secrets: the credential comes from
    the environment (DefaultAzureCredential: az login, managed or workload identity)."""

    subscription_id: str
    resource_group: str
    workspace: str
    environment: str | None = Field(
        None,
        description="Environment of the endpoint and training jobs: a YAML file, or an existing "
        "'azureml:name:version'; default deployments/azureml/environment.yml.",
    )


# Azure ML's rule for endpoint and deployment names.
AZURE_ENDPOINT_NAME = re.compile(r"^[a-zA-Z][a-zA-Z0-9-]{1,30}[a-zA-Z0-9]$")
