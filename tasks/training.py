"""Training stage: fit preprocessing and estimator together as one scikit-learn Pipeline."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prefect import get_run_logger, task

from mlops.frames import load_frame
from mlops.lineage import DataRef
from mlops.spec import PipelineSpec
from tasks._options import stage_cache
from tasks.features import Split


@dataclass(frozen=True)
class TrainedModel:
    """The fitted pipeline and when it was fitted (a cached re-run keeps the original time)."""

    pipeline: Any
    trained_at: str
    train_rows: int
    fit_seconds: float


@task(**stage_cache("train"))
def train_model(split: Split, data: DataRef, spec: PipelineSpec) -> TrainedModel:
    """Fit on the training rows only; deterministic for a given spec (its seed)."""
    from mlops.features import fit_pipeline  # noqa: PLC0415 - scikit-learn; a cached run never needs it

    logger = get_run_logger()
    logger.info("Training %s on %d rows", spec.model.estimator, split.train.rows)
    started = time.perf_counter()
    columns = [*(c.name for c in spec.feature_columns), spec.target]  # ids never reach memory
    pipeline = fit_pipeline(spec, load_frame(split.train, columns))
    seconds = time.perf_counter() - started
    logger.info("Trained %s in %.1f s", type(pipeline[-1]).__name__, seconds)
    return TrainedModel(pipeline, datetime.now(UTC).isoformat(), split.train.rows, seconds)
