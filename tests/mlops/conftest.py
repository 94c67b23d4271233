"""Fixtures for the library tests: the real churn spec and a small generated table."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mlops.core.spec import PipelineSpec, load_spec
from mlops.datasets import make_churn

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.fixture(scope="session")
def churn_yaml() -> PipelineSpec:
    """configs/churn.yaml as shipped: the generator must match it exactly."""
    return load_spec(CONFIGS / "churn.yaml")


@pytest.fixture(scope="session")
def diabetes_yaml() -> PipelineSpec:
    return load_spec(CONFIGS / "diabetes.yaml")


@pytest.fixture(scope="session")
def _generated_churn() -> pd.DataFrame:
    return make_churn(600, seed=3)


@pytest.fixture
def generated_churn(_generated_churn: pd.DataFrame) -> pd.DataFrame:
    """600 valid churn rows (above the spec's min_rows of 500); a fresh copy per test."""
    return _generated_churn.copy()
