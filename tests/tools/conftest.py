"""Fixtures for the tooling tests: the shipped specs the sample data must match."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops.spec import PipelineSpec, load_spec

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.fixture(scope="session")
def churn_yaml() -> PipelineSpec:
    """configs/churn.yaml as shipped: the generator must match it exactly."""
    return load_spec(CONFIGS / "churn.yaml")


@pytest.fixture(scope="session")
def diabetes_yaml() -> PipelineSpec:
    return load_spec(CONFIGS / "diabetes.yaml")
