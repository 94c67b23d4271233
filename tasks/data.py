"""Data stages: find the data, load it, validate it."""

from __future__ import annotations

from prefect import get_run_logger, task

from mlops.azureml.data_assets import is_data_asset
from mlops.core.lineage import DataRef
from mlops.core.spec import PipelineSpec, load_spec
from mlops.data.frames import FrameRef, release_memory, save_table
from mlops.data.loading import load_table
from mlops.data.storage import fingerprint, list_data_files
from tasks._options import IO_TASK, output_path, stage_cache


@task(**IO_TASK)
def read_spec(spec_path: str, data_url: str | None = None) -> PipelineSpec:
    """Load the spec, with the data URL overridden when the run was given one.

    A typo in the estimator's import path fails the run here. The path is checked without
    importing the estimator (scikit-learn takes 1-2 s to import, which a cached run never
    needs); `load_data` imports it before reading any data.
    """
    spec = load_spec(spec_path, {"data.url": data_url})
    spec.model.check_estimator_path()
    return spec


@task(**IO_TASK)
def locate_data(spec: PipelineSpec) -> DataRef:
    """List the data files and fingerprint them from their names, sizes and versions.

    An Azure ML data asset (``azureml:name:version``) is read at its datastore's abfs:// URL.
    """
    url, asset = spec.data.url, None
    if is_data_asset(url):
        from mlops.azureml.data_assets import resolve_for_spec  # noqa: PLC0415 - azure.ai.ml

        resolved = resolve_for_spec(spec, url)
        url, asset = resolved.url, resolved.asset
        get_run_logger().info("Data asset %s is %s", asset, url)
    files = list_data_files(url, spec.data.format)
    ref = DataRef(
        url=url,
        files=tuple(files),
        total_bytes=sum(f.size for f in files),
        fingerprint=fingerprint(files),
        asset=asset,
    )
    get_run_logger().info(
        "Data %s: %d file(s), %d bytes, fingerprint %s",
        ref.url, len(files), ref.total_bytes, ref.fingerprint[:12],
    )
    return ref


@task(**IO_TASK, **stage_cache("load"))
def load_data(data: DataRef, spec: PipelineSpec) -> FrameRef:
    """Read every file and name and type the columns as the spec does.

    Each partition is matched to the spec on its own, so one lacking a column is named. The
    table goes from the files to the checkpoint in Arrow, without a pandas copy. The
    estimator is imported first: a spec that names no usable one fails before data is read.
    """
    spec.model.estimator_class()
    table = load_table(list(data.files), spec)
    ref = save_table(table, output_path("load", {"data": data, "spec": spec}, "raw"))
    del table
    release_memory()
    get_run_logger().info("Loaded %d rows x %d columns", ref.rows, ref.columns)
    return ref


@task(**stage_cache("validate"))
def validate_data(raw: FrameRef, data: DataRef, spec: PipelineSpec) -> FrameRef:
    """Check the spec's rules on every row, a batch at a time; one error lists every failure."""
    from mlops.data.validation import (  # noqa: PLC0415 - pandera; a cached run never needs it
        validate_checkpoint,
    )

    path = output_path("validate", {"data": data, "spec": spec}, "clean")
    clean = validate_checkpoint(raw, spec, path)
    get_run_logger().info("Validated %d rows against spec '%s'", clean.rows, spec.name)
    return clean
