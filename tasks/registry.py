"""Register stage: write the bundle as the next version of the model."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from mlops.core.lineage import DataRef, code_version, git_commit
from mlops.core.settings import get_settings
from mlops.core.spec import PipelineSpec
from mlops.data.frames import sample_frame
from mlops.model.bundle import dump_model, feature_dtypes
from mlops.model.results import Evaluation, Split, TrainedModel
from mlops.registry.backend import registry_for
from mlops.registry.protocol import ModelVersion
from mlops.tracking.recorder import Recorder
from mlops.tracking.records import version_tags
from tasks._options import IO_TASK


def _lineage(
    trained: TrainedModel, split: Split, data: DataRef, spec: PipelineSpec,
    evaluation: Evaluation, source_rows: int,
) -> dict:
    model = trained.pipeline
    return {
        "target": spec.target,
        "task": spec.task,
        "classes": [c.item() if hasattr(c, "item") else c for c in getattr(model, "classes_", [])],
        "estimator": spec.model.estimator,
        "params": spec.model.params,
        "trained_at": trained.trained_at,
        "source_rows": source_rows,
        "clean_rows": split.train.rows + split.test.rows,
        "train_rows": split.train.rows,
        "holdout_rows": split.test.rows,
        "metrics": evaluation.candidate_metrics,
        "previous_champion": evaluation.champion_version,
        "data_url": data.url,
        "data_asset": getattr(data, "asset", None),  # refs cached before it have none
        "data_fingerprint": data.fingerprint,
        "spec_name": spec.name,
        "spec_hash": spec.spec_hash(),
        "code_version": code_version(),
        "git_commit": git_commit(),
        "flow_run_id": flow_run.id,
        "training_job": getattr(trained, "job_name", None),  # results pickled before it: None
    }


@task(**IO_TASK, cache_policy=NO_CACHE)
def register_model(
    trained: TrainedModel, split: Split, data: DataRef, spec: PipelineSpec,
    evaluation: Evaluation, source_rows: int, recorder: Recorder | None = None,
) -> ModelVersion:
    """Write model, manifest, reference sample and trusted holdout; the registry assigns the
    version. With a `recorder`, the manifest names the MLflow run and the run the version."""
    mlflow_run_id = recorder.wait_run_id() if recorder is not None else None
    names = [c.name for c in spec.feature_columns]
    # the reference sample, gathered from the training checkpoint (not the whole table);
    # its dtypes are the table's: checkpoints carry pandas' dtypes in their schema
    sample = sample_frame(split.train, spec.reference_rows, spec.split.seed,
                          [*names, spec.target])
    # the rows it was judged on, kept as its trusted holdout: later candidates face them too
    holdout = sample_frame(split.test, spec.evaluation.holdout_rows, spec.split.seed,
                           [*names, spec.target])
    registry = registry_for(spec, get_settings())
    version = registry.register(
        spec.model_name,
        model_bytes=dump_model(trained.pipeline),
        features=feature_dtypes(sample, names),
        lineage={**_lineage(trained, split, data, spec, evaluation, source_rows),
                 "trusted_holdout_rows": len(holdout), "mlflow_run_id": mlflow_run_id},
        reference=sample,
        holdout=holdout,
    )
    get_run_logger().info("Registered %s version %s", version.name, version.version)
    if recorder is not None:
        recorder.log("linking the registered version",
                     tags=version_tags(version.name, version.version, version.url))
    return version
