"""Training stage: fit preprocessing and estimator together as one scikit-learn Pipeline."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from prefect import get_run_logger, task

from mlops.core.lineage import DataRef
from mlops.core.settings import get_settings
from mlops.core.spec import PipelineSpec
from mlops.data.frames import load_frame
from mlops.model.results import Split, TrainedModel
from tasks._options import stage_cache


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
        pipeline, seconds, job = train_on_azureml(spec, split.train, get_settings())
        return TrainedModel(pipeline, datetime.now(UTC).isoformat(), split.train.rows, seconds,
                            job_name=job)
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
