"""Batch-scoring stages: the model to score with, the partitions, scoring one, the manifest.

`score_partition` is the mapped task: one per input file, on whatever task runner the flow
runs with (threads by default; prefect-dask's DaskTaskRunner spreads them over a cluster).
It retries only I/O failures: a corrupt file fails at once, naming the file.
"""

from __future__ import annotations

import time
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_progress_artifact
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from mlops.batch.manifest import build_manifest, write_manifest
from mlops.batch.partitions import (
    ModelRef,
    OutputPlan,
    Partition,
    PartitionResult,
    plan_partitions,
)
from mlops.core.errors import RegistryError
from mlops.core.settings import get_settings
from mlops.core.spec import PipelineSpec, load_spec
from mlops.registry.backend import registry_for
from tasks._options import IO_TASK


@task(**IO_TASK)
def read_batch_spec(spec_path: str) -> PipelineSpec:
    return load_spec(spec_path)


@task(**IO_TASK)
def resolve_model(spec: PipelineSpec, version: int | None) -> ModelRef:
    """The named version, or the one the `champion` alias points at.

    Raises:
        RegistryError: no champion yet (and no version named), or no such version.
    """
    registry = registry_for(spec, get_settings())
    if version is None:
        version = registry.alias(spec.model_name)
        if version is None:
            raise RegistryError(f"model '{spec.model_name}' has no champion yet: train one "
                                "first or name a version (--version)")
    found = registry.get(spec.model_name, version)
    return ModelRef(spec.model_name, str(version), found.url, found.manifest["model_sha256"])


def output_plan(spec: PipelineSpec, model: ModelRef, output_url: str) -> OutputPlan:
    """What every partition writes; the fast path is on or off as for the endpoint
    (``MLOPS_ENDPOINT_FAST_PATH``), so a row gets the endpoint's answer."""
    from serving.config import EndpointConfig  # noqa: PLC0415 - reads the environment

    return OutputPlan(
        output_url=output_url, model=model,
        ids=tuple(c.name for c in spec.columns if c.role == "id"),
        passthrough=tuple(spec.column(c).name for c in spec.batch.passthrough),
        probabilities=spec.batch.probabilities, rows_per_batch=spec.batch.rows_per_batch,
        fmt=spec.data.format, separator=spec.data.separator,
        fast=EndpointConfig().fast_path,
    )


@task(**IO_TASK)
def list_partitions(input_url: str, spec: PipelineSpec) -> list[Partition]:
    partitions = plan_partitions(input_url, spec.data.format)
    get_run_logger().info("%s: %d partition(s), %.1f MB", input_url, len(partitions),
                          sum(p.input.size for p in partitions) / 1e6)
    return partitions


@task(**IO_TASK, cache_policy=NO_CACHE, task_run_name="score {partition.output_name}")
def score_partition(partition: Partition, plan: OutputPlan) -> PartitionResult:
    from mlops.batch import run  # noqa: PLC0415 - pandas and the scoring core where it scores

    return run.score_partition(partition, plan)


@task(**IO_TASK)
def write_batch_manifest(input_url: str, plan: OutputPlan, partitions: list[Partition],
                         results: dict[str, PartitionResult], failures: dict[str, str]) -> str:
    manifest = build_manifest(input_url, plan, partitions, results, failures,
                              flow_run.get_id())
    url = write_manifest(manifest)
    get_run_logger().info("Manifest: %s (%d rows, %d could not be scored, %d missing)", url,
                          manifest["rows"], manifest["failed_rows"], len(manifest["missing"]))
    return url


class Progress:
    """The run's progress artifact and log: partitions and rows done, rows per second."""

    def __init__(self, total: int) -> None:
        self.total, self.partitions, self.rows, self.failed = total, 0, 0, 0
        self.started = time.perf_counter()
        self.artifact = create_progress_artifact(0.0, key="batch-scoring-progress",
                                                 description=self.describe())

    def describe(self) -> str:
        seconds = max(time.perf_counter() - self.started, 1e-9)
        return (f"{self.partitions}/{self.total} partitions, {self.rows:,} rows "
                f"({self.failed:,} not scored), {self.rows / seconds:,.0f} rows/s")

    def add(self, result: PartitionResult | None) -> None:
        from prefect.artifacts import update_progress_artifact  # noqa: PLC0415

        self.partitions += 1
        if result is not None:
            self.rows += result.rows
            self.failed += result.failed_rows
        update_progress_artifact(self.artifact, 100.0 * self.partitions / max(self.total, 1),
                                 description=self.describe())
        get_run_logger().info("Progress: %s", self.describe())


def publish_summary(plan: OutputPlan, manifest_url: str, progress: Progress,
                    failures: dict[str, str]) -> str:
    """A markdown artifact of the run; returns its one-line summary."""
    summary = (f"{plan.model.name} v{plan.model.version}: {progress.describe()}; "
               f"{len(failures)} partition(s) missing")
    lines = [f"### Batch scoring: {summary}", "", f"Output: {plan.output_url}",
             f"Manifest: {manifest_url}"]
    lines += ["", "| missing partition | why |", "|---|---|"] if failures else []
    lines += [f"| {url} | {why.replace('|', '/')} |" for url, why in failures.items()]
    create_markdown_artifact("\n".join(lines), key="batch-scoring")
    return summary


def failure_message(exc: Any) -> str:
    return f"{type(exc).__name__}: {exc}"
