"""A churn champion in a temporary registry and data to score, for the batch tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mlops.batch.partitions import ModelRef, OutputPlan
from mlops.core.spec import PipelineSpec, load_spec
from mlops.model.bundle import dump_model, feature_dtypes
from mlops.model.features import feature_frame, fit_pipeline
from mlops.registry.local import LocalRegistry
from tests.conftest import write_spec
from tools.datasets import make_churn

ROOT = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class Champion:
    spec_path: str
    spec: PipelineSpec
    model: ModelRef
    registry: str


def make_champion(folder: Path, rows: int = 1500) -> Champion:
    """Fit the churn spec's pipeline (few trees) and register it as the champion."""
    folder.mkdir(parents=True, exist_ok=True)
    registry = str(folder / "registry")
    spec_path = write_spec(folder, "churn", {
        "registry.url": registry, "model.params": {"max_iter": 20, "random_state": 0},
        "batch": {"passthrough": ["Region"], "rows_per_batch": 1024},
    })
    spec = load_spec(spec_path)
    frame = make_churn(rows, seed=3)
    pipeline = fit_pipeline(spec, frame)
    features = [c.name for c in spec.feature_columns]
    version = LocalRegistry(registry).register(
        spec.model_name, model_bytes=dump_model(pipeline),
        features=feature_dtypes(feature_frame(frame, spec), features),
        lineage={"target": spec.target, "task": spec.task}, reference=frame.head(100),
    )
    LocalRegistry(registry).set_alias(spec.model_name, version.version)
    model = ModelRef(spec.model_name, str(version.version), version.url,
                     version.manifest["model_sha256"])
    return Champion(spec_path, spec, model, registry)


def plan_for(champion: Champion, output_url: str, rows_per_batch: int = 1024,
             fast: bool = True) -> OutputPlan:
    return OutputPlan(output_url, champion.model, ("customer_id",), ("region",), True,
                      rows_per_batch, fast=fast)


def write_partitions(folder: Path, parts: int = 3, rows: int = 2500, seed: int = 9) -> pd.DataFrame:
    """`parts` Parquet files of unlabelled churn rows (no target column); returns all rows."""
    frame = make_churn(rows * parts, seed=seed).drop(columns=["churned"])
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(parts):
        frame.iloc[i * rows:(i + 1) * rows].to_parquet(folder / f"part-{i}.parquet", index=False)
    return frame
