"""Small synthetic frames with the dtypes validation hands on, and the specs that describe them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlops.core.spec import PipelineSpec, load_spec

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def churn_spec(overrides: dict[str, Any] | None = None) -> PipelineSpec:
    """configs/churn.yaml with dotted overrides; small models keep the tests fast."""
    return load_spec(CONFIGS / "churn.yaml", {"model.params.max_iter": 30, **(overrides or {})})


def diabetes_spec(overrides: dict[str, Any] | None = None) -> PipelineSpec:
    return load_spec(CONFIGS / "diabetes.yaml", overrides)


def _with_nulls(values: pd.Series, rng: np.random.Generator, share: float) -> pd.Series:
    values = values.copy()
    values[rng.random(len(values)) < share] = pd.NA
    return values


def churn_frame(rows: int = 400, seed: int = 0, nulls: bool = True) -> pd.DataFrame:
    """Customers shaped like configs/churn.yaml, with churn depending on the features."""
    rng = np.random.default_rng(seed)
    contract = rng.choice(["month-to-month", "one-year", "two-year"], rows, p=[0.5, 0.3, 0.2])
    tenure = rng.integers(0, 72, rows)
    calls = rng.poisson(2, rows)
    logit = 1.5 * (contract == "month-to-month") - 0.04 * tenure + 0.4 * calls - 0.8
    churned = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype("int64")
    charges = rng.uniform(20, 120, rows)
    frame = pd.DataFrame({
        "customer_id": pd.array([f"c{i:05d}" for i in range(rows)], dtype="string"),
        "signup_date": pd.Timestamp("2022-01-01")
        + pd.to_timedelta(rng.integers(0, 700, rows), unit="D"),
        "tenure_months": tenure.astype("int64"),
        "monthly_charges": charges,
        "total_charges": charges * np.maximum(tenure, 1),
        "age": rng.uniform(18, 90, rows),
        "support_calls": calls.astype("int64"),
        "num_products": rng.integers(1, 5, rows).astype("int64"),
        "avg_session_minutes": rng.gamma(2.0, 10.0, rows),
        "days_since_last_login": rng.integers(0, 400, rows).astype("int64"),
        "contract": pd.array(contract, dtype="string"),
        "payment_method": pd.array(
            rng.choice(["electronic-check", "mailed-check", "bank-transfer", "credit-card"], rows),
            dtype="string",
        ),
        "internet_service": pd.array(rng.choice(["dsl", "fiber", "none"], rows), dtype="string"),
        "region": pd.array(
            rng.choice(["north", "south", "east", "west", "central"], rows), dtype="string"
        ),
        "paperless_billing": pd.array(rng.random(rows) < 0.6, dtype="boolean"),
        "churned": churned,
    })
    frame["signup_date"] = frame["signup_date"].astype("datetime64[ns]")
    if nulls:
        frame["age"] = frame["age"].mask(rng.random(rows) < 0.05)
        frame["payment_method"] = _with_nulls(frame["payment_method"], rng, 0.05)
        frame["paperless_billing"] = _with_nulls(frame["paperless_billing"], rng, 0.05)
    return frame


def diabetes_frame() -> pd.DataFrame:
    """scikit-learn's bundled diabetes data (442 rows, no download) as configs/diabetes.yaml."""
    from sklearn.datasets import load_diabetes

    data = load_diabetes(as_frame=True)
    return data.frame.astype("float64")
