"""Fixtures for the Azure ML backends' offline tests: a recording stand-in for MLClient, specs
that select the 'azureml' backends, and small fitted models to register."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from mlops.core.spec import PipelineSpec, load_spec
from tests.azureml.fake_mlclient import RG, SUB, WS, FakeMLClient
from tests.conftest import ROOT

CHURN_YAML = ROOT / "configs" / "churn.yaml"
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
def fake(tmp_path: Path) -> FakeMLClient:
    return FakeMLClient(tmp_path / "azure")


@pytest.fixture
def use_fake(fake: FakeMLClient, monkeypatch: pytest.MonkeyPatch) -> FakeMLClient:
    """The backends built by `registry_for`/`endpoint_for`/training get the stand-in client."""
    import mlops.endpoint.azureml
    import mlops.registry.azureml
    import mlops.training.azureml

    for module in (mlops.endpoint.azureml, mlops.registry.azureml, mlops.training.azureml):
        monkeypatch.setattr(module, "workspace_client", lambda target: fake)
    monkeypatch.setattr(mlops.registry.azureml, "registry_client", lambda name: fake)
    return fake


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
