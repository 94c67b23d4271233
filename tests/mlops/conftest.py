"""Fixtures for the library tests: a small generated churn table."""

from __future__ import annotations

import pandas as pd
import pytest

from tools.datasets import make_churn


@pytest.fixture(scope="session")
def _generated_churn() -> pd.DataFrame:
    return make_churn(600, seed=3)


@pytest.fixture
def generated_churn(_generated_churn: pd.DataFrame) -> pd.DataFrame:
    """600 valid churn rows (above the spec's min_rows of 500); a fresh copy per test."""
    return _generated_churn.copy()
