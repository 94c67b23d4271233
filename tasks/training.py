"""Training stage: fit preprocessing and estimator together as one scikit-learn Pipeline."""

from __future__ import annotations

import pickle
import time
from datetime import UTC, datetime
from typing import Any

from prefect import get_run_logger, task

from mlops.core.lineage import DataRef
from mlops.core.settings import get_settings
from mlops.data.frames import load_frame
from mlops.spec import PipelineSpec
from tasks._options import stage_cache
from tasks.features import Split


class TrainedModel:
    """The fitted pipeline and when it was fitted (a cached re-run keeps the original time).

    Prefect keeps this result as a pickle. The pipeline inside is pickled on its own and
    unpickled only when first used: unpickling it imports scikit-learn (1-2 s), which a re-run
    that finds its champion unchanged never needs.
    """

    def __init__(self, pipeline: Any, trained_at: str, train_rows: int, fit_seconds: float):
        self._pipeline = pipeline
        self._pickled: bytes | None = None
        self.trained_at = trained_at
        self.train_rows = train_rows
        self.fit_seconds = fit_seconds

    @property
    def pipeline(self) -> Any:
        if self._pipeline is None:
            self._pipeline = pickle.loads(self._pickled)  # noqa: S301 - our own result store
        return self._pipeline

    def __getstate__(self) -> dict[str, Any]:
        if self._pickled is None:
            self._pickled = pickle.dumps(self._pipeline, protocol=pickle.HIGHEST_PROTOCOL)
        return {**self.__dict__, "_pipeline": None}

    def __repr__(self) -> str:
        return (f"TrainedModel(trained_at={self.trained_at!r}, train_rows={self.train_rows}, "
                f"fit_seconds={self.fit_seconds:.1f})")


@task(**stage_cache("train"))
def train_model(split: Split, data: DataRef, spec: PipelineSpec) -> TrainedModel:
    """Fit on the training rows only; deterministic for a given spec (its seed).

    With ``training.backend: azureml`` the fit runs as an Azure ML command job on the spec's
    cluster, in the pinned environment, and the fitted pipeline comes back from its output.
    """
    logger = get_run_logger()
    if spec.training.backend == "azureml":
        from mlops.training.azureml import train_on_azureml  # noqa: PLC0415 - azure.ai.ml

        logger.info("Training %s on %d rows as an Azure ML job on '%s'",
                    spec.model.estimator, split.train.rows, spec.training.compute)
        pipeline, seconds = train_on_azureml(spec, split.train, get_settings())
        return TrainedModel(pipeline, datetime.now(UTC).isoformat(), split.train.rows, seconds)
    from mlops.model.features import (  # noqa: PLC0415 - scikit-learn; a cached run never needs it
        fit_pipeline,
    )

    logger.info("Training %s on %d rows", spec.model.estimator, split.train.rows)
    started = time.perf_counter()
    columns = [*(c.name for c in spec.feature_columns), spec.target]  # ids never reach memory
    pipeline = fit_pipeline(spec, load_frame(split.train, columns))
    seconds = time.perf_counter() - started
    logger.info("Trained %s in %.1f s", type(pipeline[-1]).__name__, seconds)
    return TrainedModel(pipeline, datetime.now(UTC).isoformat(), split.train.rows, seconds)
