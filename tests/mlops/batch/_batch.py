"""A churn champion in a temporary registry and data to score, for the batch tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from mlops.batch.partitions import ModelRef, OutputPlan, plan_partitions
from mlops.batch.run import score_partition
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


def make_champion(folder: Path, rows: int = 1500, fast_path: bool = True) -> Champion:
    """Fit the churn spec's pipeline (few trees) and register it as the champion; with
    `fast_path` its bundle carries a snapshot of the model's fast path."""
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
        fast_path=fast_path,
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


_SCORE = """
import json, sys
from mlops.batch.partitions import ModelRef, OutputPlan, plan_partitions
from mlops.batch.run import score_partition
args = json.loads(sys.argv[1])
plan = OutputPlan(args["out"], ModelRef(**args["model"]), ("customer_id",), ("region",), True,
                  1024, fast=True)
results = [score_partition(p, plan) for p in plan_partitions(args["input"])]
print(json.dumps({"failed": sum(r.failed_rows for r in results),
                  "imported": sorted(m for m in ("sklearn", "skops") if m in sys.modules)}))
"""


def score_here(champion: Champion, folder: Path, out: Path, fast: bool = True) -> None:
    """Score every partition of `folder` in this process (`fast`: with the fast path)."""
    plan = plan_for(champion, str(out), fast=fast)
    for partition in plan_partitions(str(folder)):
        score_partition(partition, plan)


def score_in_a_new_process(champion: Champion, folder: Path, out: Path) -> dict:
    """Score `folder` in a new Python process: its count of failed rows, and which of
    scikit-learn and skops it imported."""
    args = {"out": str(out), "input": str(folder), "model": asdict(champion.model)}
    done = subprocess.run([sys.executable, "-c", _SCORE, json.dumps(args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def scores(out: Path) -> pd.DataFrame:
    """An output folder's rows without the scoring time, in id order."""
    frame = pq.read_table(out).to_pandas().drop(columns="scored_at")
    return frame.sort_values("customer_id", ignore_index=True)
