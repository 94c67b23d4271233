"""A tiny classifier bundle for the serving tests (independent of mlops.model.features)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from mlops.model.bundle import dump_model, feature_dtypes
from mlops.registry.local import LocalRegistry
from mlops.registry.protocol import ModelVersion

MODEL = "toy"
# Names with capitals and spaces exercise matching that ignores case and separators.
FEATURES = ["num_a", "Tenure Months", "cat_c"]


def toy_frame(rows: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    num = rng.normal(size=rows)
    num[rng.random(rows) < 0.05] = np.nan
    cats = rng.choice(["red", "green", "blue"], rows)
    tenure = rng.integers(0, 72, rows).astype("int64")
    score = np.nan_to_num(num) + (cats == "red") - tenure / 36
    frame = pd.DataFrame({
        "num_a": num,
        "Tenure Months": tenure,
        "cat_c": pd.array(cats, dtype="str"),
    })
    frame["label"] = (score + rng.normal(scale=0.5, size=rows) > 0).astype("int64")
    return frame


def toy_pipeline(frame: pd.DataFrame, max_iter: int, model: object | None = None) -> Pipeline:
    pre = ColumnTransformer([
        ("num", SimpleImputer(strategy="median"), ["num_a", "Tenure Months"]),
        ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), ["cat_c"]),
    ])
    if model is None:
        model = HistGradientBoostingClassifier(max_iter=max_iter, random_state=0)
    return Pipeline([("pre", pre), ("model", model)]).fit(frame[FEATURES], frame["label"])


def faulty_pipeline(frame: pd.DataFrame) -> Pipeline:
    """A toy model whose class 1 is a `slice`: it loads, answers its probe rows (the loader
    checks shapes, not values), and every request with a row predicted 1 fails on the server
    (the answer cannot be encoded: a 500), the others are answered."""
    pipeline = toy_pipeline(frame, 5)
    pipeline.steps[-1][1].classes_ = np.array([0, slice(1)], dtype=object)
    return pipeline


def slow_pipeline(frame: pd.DataFrame) -> Pipeline:
    """A toy model that answers correctly but slowly: 300 trees, walked one by one per call."""
    return toy_pipeline(frame, 0, RandomForestClassifier(n_estimators=300, random_state=0))


def register_toy(registry_dir: Path, frame: pd.DataFrame, max_iter: int) -> ModelVersion:
    """Fit and register one version; different `max_iter` give different versions."""
    return register_pipeline(registry_dir, frame, toy_pipeline(frame, max_iter))


def register_pipeline(
    registry_dir: Path, frame: pd.DataFrame, pipeline: Pipeline, **lineage: object,
) -> ModelVersion:
    """Register a fitted toy pipeline as the next version of the toy model; `lineage` adds to
    its manifest (``previous_champion=1``)."""
    return LocalRegistry(str(registry_dir)).register(
        MODEL,
        model_bytes=dump_model(pipeline),
        features=feature_dtypes(frame, FEATURES),
        lineage={"target": "label", "task": "classification", **lineage},
        reference=frame.head(50),
    )
