"""A small fitted pipeline and how the registry tests register it (local folder and blob)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from mlops.model.bundle import dump_model, feature_dtypes

Fitted = tuple[Any, pd.DataFrame]


def fit_small() -> Fitted:
    """A scaled logistic regression on two columns, and the frame it was fitted on."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200)})
    target = (frame.a + frame.b > 0).astype(int)
    return make_pipeline(StandardScaler(), LogisticRegression()).fit(frame, target), frame


def register_fitted(registry: Any, fitted: Fitted, name: str = "m") -> Any:
    model, frame = fitted
    return registry.register(
        name,
        model_bytes=dump_model(model),
        features=feature_dtypes(frame, ["a", "b"]),
        lineage={"target": "y", "task": "classification", "metrics": {"roc_auc": 0.9}},
        reference=frame.head(20),
    )
