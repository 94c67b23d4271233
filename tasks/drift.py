"""Drift stages: the champion's reference, the current data, the verdict, the report, retraining.

Tasks that take or return tables use ``NO_CACHE``: Prefect's default cache policy would hash
their inputs, and hashing a table means pickling it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pyarrow as pa
from prefect import get_run_logger, task
from prefect.artifacts import (
    create_link_artifact,
    create_markdown_artifact,
    create_table_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from mlops.azureml.data_assets import is_data_asset
from mlops.core.settings import get_settings
from mlops.core.spec import PipelineSpec, load_spec
from mlops.data.storage import path_to_url, url_to_fs, write_file
from mlops.drift.collected import read_collected_window
from mlops.drift.compute import DriftResult, compute_drift, drift_columns
from mlops.drift.data import (
    CurrentData,
    endpoint_log_url,
    read_current,
    read_inference_window,
    read_reference,
    require_columns,
)
from mlops.drift.report import REPORT_FILE, RESULT_FILE, ReportSample, evidently_report, result_json
from mlops.endpoint.backend import local_endpoint_url
from mlops.endpoint.local import endpoint_name_in
from mlops.model.results import Champion
from mlops.registry.backend import registry_for
from tasks._options import IO_TASK


@dataclass(frozen=True)
class SavedReport:
    url: str
    sample: ReportSample


def _names(spec: PipelineSpec) -> list[str]:
    return [c.name for c in drift_columns(spec)]


@task(**IO_TASK)
def read_drift_spec(spec_path: str) -> PipelineSpec:
    return load_spec(spec_path)


@task(**IO_TASK)
def find_champion(spec: PipelineSpec) -> Champion | None:
    """The version the `champion` alias points at, or None before the first promotion."""
    registry = registry_for(spec, get_settings())
    version = registry.alias(spec.model_name)
    if version is None:
        return None
    return Champion(spec.model_name, version, registry.bundle_url(spec.model_name, version))


@task(**IO_TASK, cache_policy=NO_CACHE)
def load_reference(champion: Champion, spec: PipelineSpec) -> pa.Table:
    """The training sample stored with the champion, with the columns the spec judges."""
    table = read_reference(champion.url, _names(spec))
    source = f"the reference sample of {champion.model_name} v{champion.version}"
    table = require_columns(table, _names(spec), source)
    get_run_logger().info("Reference: %s, %d rows", source, table.num_rows)
    return table


@task(**IO_TASK, cache_policy=NO_CACHE)
def load_current(spec: PipelineSpec, data_url: str | None, window_hours: int | None) -> CurrentData:
    """Every row at `data_url`, or what the endpoint scored for this model in the last hours
    (on Azure ML, what its data collector wrote)."""
    if is_data_asset(data_url):
        from mlops.azureml.data_assets import resolve_for_spec  # noqa: PLC0415 - azure.ai.ml

        data_url = resolve_for_spec(spec, data_url).url
    if data_url:
        current = read_current(data_url, _names(spec))
    else:
        end = datetime.now(UTC)
        start = end - timedelta(hours=window_hours or spec.drift.window_hours)
        current = _scored_window(spec, start, end)
    get_run_logger().info("Current: %s, %d rows", current.source, current.rows)
    return current


def _scored_window(spec: PipelineSpec, start: datetime, end: datetime) -> CurrentData:
    """What the spec's endpoint scored since `start`: the local endpoint's inference log, or
    what Azure ML's data collector wrote for a managed endpoint."""
    if spec.endpoint.backend == "azureml":
        from mlops.drift.azureml import collected_inputs_url  # noqa: PLC0415 - azure.ai.ml

        return read_collected_window(collected_inputs_url(spec), _names(spec), start, end)
    served_at = local_endpoint_url(spec, get_settings())
    return read_inference_window(endpoint_log_url(endpoint_name_in(served_at)), spec.model_name,
                                 _names(spec), start, end)


@task(cache_policy=NO_CACHE)
def judge_drift(reference: pa.Table, current: CurrentData, spec: PipelineSpec) -> DriftResult:
    """Evidently's per-column verdicts on every row; missing columns are a data error."""
    table = require_columns(current.table, _names(spec), current.source)
    result = compute_drift(reference, table, spec)
    get_run_logger().info("%s: %s", spec.name, result.summary)
    return result


@task(**IO_TASK, cache_policy=NO_CACHE)
def write_drift_report(
    reference: pa.Table, current: CurrentData, result: DriftResult, spec: PipelineSpec,
    context: dict,
) -> SavedReport:
    """Evidently's HTML report and the verdicts as JSON, in the run's output folder."""
    html, sample = evidently_report(
        reference, current.table, result, rows=spec.drift.report_rows
    )
    folder = f"{get_settings().outputs_location}/{spec.name}/drift/{flow_run.id or 'local'}"
    fs, root = url_to_fs(folder)
    fs.makedirs(root, exist_ok=True)
    write_file(fs, f"{root}/{REPORT_FILE}", html.encode())
    write_file(fs, f"{root}/{RESULT_FILE}", result_json(result, context))
    url = path_to_url(fs, f"{root}/{REPORT_FILE}")
    get_run_logger().info("Evidently's report: %s", url)
    return SavedReport(url, sample)


@task
def publish_drift(spec: PipelineSpec, result: DriftResult | None, markdown: str,
                  report_url: str | None) -> None:
    """The summary, the per-column table and a link to the HTML report, as Prefect artifacts."""
    create_markdown_artifact(
        key=f"{spec.name}-drift", markdown=markdown, description=f"Drift check of {spec.name}"
    )
    if result is not None:
        create_table_artifact(
            key=f"{spec.name}-drift-columns", table=result.table(),
            description="Per column: Evidently's method, score, threshold and verdict",
        )
    if report_url:
        link = report_url if "://" in report_url else f"file://{report_url}"
        create_link_artifact(
            key=f"{spec.name}-drift-report", link=link,
            link_text="Evidently data drift report", description=report_url,
        )
