"""Fixtures for the Azure ML backends' tests: the real azure-ai-ml SDK talking HTTP to a
stand-in for the Azure ML REST API (``arm_standin``), its uploads and downloads on Azurite,
specs that select the 'azureml' backends, and small fitted models to register."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from azure.ai.ml import MLClient
from azure.storage.blob import generate_container_sas

from mlops.core.spec import PipelineSpec, load_spec
from tests.azure.azurite import ACCOUNT, ACCOUNT_KEY, Azurite
from tests.azure.conftest import (  # noqa: F401 (the session's Azurite, its environment)
    azurite,
    blob_env,
    new_container,
)
from tests.azureml.standin import (
    REGISTRY,
    RG,
    SUB,
    WS,
    FakeCredential,
    Workspace,
    storage_transport,
)
from tests.conftest import ROOT

CHURN_YAML = ROOT / "configs" / "churn.yaml"
# The environment Azure ML builds from conda.yml, built here from the same lock
SHIPPED_PYTHON = ROOT / ".venv-azmlinfsrv" / "bin" / "python"
AZURE = {
    "azureml": {"subscription_id": SUB, "resource_group": RG, "workspace": WS},
    "registry.backend": "azureml",
    "endpoint.backend": "azureml",
    "endpoint.name": "churn-endpoint",
}


def azure_spec(**overrides: Any) -> PipelineSpec:
    """configs/churn.yaml with both Azure ML backends (and any dotted overrides)."""
    return load_spec(CHURN_YAML, {**AZURE, **overrides})


@pytest.fixture
def workspace(azurite: Azurite, monkeypatch: pytest.MonkeyPatch) -> Workspace:  # noqa: F811
    """A fresh workspace whose default datastore is a new container on Azurite."""
    import azure.storage.blob._shared.base_client as storage_base

    def fresh() -> tuple[str, str]:
        name = new_container(azurite.connection_string, "ws")
        return name, generate_container_sas(
            ACCOUNT, name, account_key=ACCOUNT_KEY, permission="racwdl",
            expiry=datetime.now(UTC) + timedelta(hours=2))

    container, sas = fresh()
    ws = Workspace(azurite.blob_endpoint, sas, container=container, new_container=fresh)
    monkeypatch.setattr(storage_base, "RequestsTransport", storage_transport(ws))
    return ws


def client_of(ws: Workspace, **kwargs: Any) -> MLClient:
    """The real MLClient on the stand-in's transport. Backoff between retries is shortened (the
    number of retries and what is retried stay the SDK's)."""
    return MLClient(FakeCredential(), SUB, RG, WS, transport=ws.transport(), show_progress=False,
                    retry_backoff_factor=0.01, **kwargs)


def registry_client_of(ws: Workspace) -> MLClient:
    """The real MLClient of the stand-in's Azure ML registry (found through discovery)."""
    return MLClient(FakeCredential(), registry_name=REGISTRY, transport=ws.transport(),
                    show_progress=False, retry_backoff_factor=0.01)


@pytest.fixture
def ml_client(workspace: Workspace) -> MLClient:
    return client_of(workspace)


@pytest.fixture
def use_workspace(ml_client: MLClient, workspace: Workspace,
                  monkeypatch: pytest.MonkeyPatch) -> Workspace:
    """Every module that builds a workspace client (the backends built by `registry_for` and
    `endpoint_for`, training, the drift check's collector URL) gets the stand-in's client."""
    import mlops.azureml.client
    import mlops.drift.azureml
    import mlops.endpoint.azureml
    import mlops.registry.azureml
    import mlops.training.azureml  # noqa: F401 - imported so that its binding is found below

    original = mlops.azureml.client.workspace_client
    for module in [m for n, m in sys.modules.items() if n.startswith("mlops.")]:
        if getattr(module, "workspace_client", None) is original:
            monkeypatch.setattr(module, "workspace_client", lambda target: ml_client)
    return workspace


@dataclass(frozen=True)
class Toy:
    """A small fitted classifier and what registering it needs."""

    pipeline: Any
    frame: pd.DataFrame
    features: list[dict[str, str]]
    model_bytes: bytes

    def register(self, registry: Any, name: str = "toy", **lineage: Any) -> Any:
        return registry.register(
            name, model_bytes=self.model_bytes, features=self.features,
            lineage={"target": "label", "task": "classification", **lineage},
            reference=self.frame.head(30),
        )


@pytest.fixture(scope="session")
def toy() -> Toy:
    from mlops.model.bundle import dump_model, feature_dtypes
    from tests.serving._models import FEATURES, toy_frame, toy_pipeline

    frame = toy_frame(200)
    pipeline = toy_pipeline(frame, 5)
    return Toy(pipeline, frame, feature_dtypes(frame, FEATURES), dump_model(pipeline))


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    folder = tmp_path / "state"
    monkeypatch.setenv("MLOPS_STATE_DIR", str(folder))
    yield folder


@pytest.fixture(scope="module")
def shipped_python() -> str:
    """The Python of `.venv-azmlinfsrv` (`make azmlinfsrv-env`); missing fails on CI."""
    if not SHIPPED_PYTHON.exists():
        message = f"{SHIPPED_PYTHON} is missing: make azmlinfsrv-env"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return str(SHIPPED_PYTHON)
