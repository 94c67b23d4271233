"""The Azure ML workspace as the MLflow store, without the azureml-mlflow plugin.

A workspace is an MLflow tracking server. Its tracking URI (``azureml://<region>.api.azureml.ms/
mlflow/v1.0/subscriptions/.../workspaces/<name>``) is the https URL of that server with another
scheme; MLflow's REST client talks to the https form and sends ``MLFLOW_TRACKING_TOKEN`` as a
bearer token, here an Azure Resource Manager token from the same DefaultAzureCredential as every
other Azure ML call. The plugin would add only this and an artifact repository for ``azureml://``
artifact URIs, at the price of pins that break adlfs (docs/tracking.md). So artifacts are not
sent to the workspace: its runs carry params, metrics and tags.

Imports ``azure.ai.ml`` (seconds) at its top: imported only when a spec tracks to Azure ML, and
then in the recorder process.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mlops.azureml.client import azure_errors, credential, workspace_client
from mlops.core.errors import TrackingError
from mlops.core.spec.targets import AzureMLSpec
from mlops.tracking.protocol import TrackingTarget

# The audience of the workspace's MLflow endpoint: Azure Resource Manager, as `az account
# get-access-token` gives by default.
ARM_SCOPE = "https://management.azure.com/.default"


def https_uri(tracking_uri: str) -> str:
    """The https URL MLflow's REST client can call, from a workspace's tracking URI.

    Raises:
        TrackingError: the URI is neither ``azureml://`` nor ``https://``.
    """
    scheme, sep, rest = tracking_uri.partition("://")
    if not sep or scheme not in {"azureml", "https"} or not rest:
        raise TrackingError(
            f"not an Azure ML tracking URI: '{tracking_uri[:120]}' (expected azureml://<region>"
            ".api.azureml.ms/mlflow/v1.0/subscriptions/.../workspaces/<name>)"
        )
    return f"https://{rest}"


def token_provider(cred: Any) -> Callable[[], str]:
    """A function returning a current bearer token; the credential caches and renews it."""
    return lambda: cred.get_token(ARM_SCOPE).token


def workspace_tracking_uri(target: AzureMLSpec, client: Any = None) -> str:
    """The workspace's own MLflow tracking URI, as Azure ML reports it."""
    client = client or workspace_client(target)
    with azure_errors(TrackingError, f"reading workspace '{target.workspace}'"):
        return client.workspaces.get(target.workspace).mlflow_tracking_uri


def azureml_target(target: AzureMLSpec, uri: str | None = None, client: Any = None,
                   cred: Any = None) -> TrackingTarget:
    """The workspace's tracking server, authenticated by DefaultAzureCredential (or `cred`)."""
    return TrackingTarget(
        uri=https_uri(uri or workspace_tracking_uri(target, client)),
        token=token_provider(cred or credential()),
        artifacts=False,
        mirror_champion=False,
    )
