"""Batch scoring: the champion (or a named version) scores every row of a dataset.

input URL -> partitions (one mapped task each, on threads or a Dask cluster) -> the endpoint's
scoring core -> Parquet partitions and a manifest at the output URL. Finished partitions are
skipped, so a re-run or a resumed run writes nothing twice; a partition that cannot be read is
listed as missing and the run ends Failed after the others are done. Run it once with
``mlops score-batch``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from prefect import flow, get_run_logger, unmapped
from prefect.futures import as_completed
from prefect.states import Failed, State

from flows import _runtime
from flows._task_runners import RunnerKind, open_runner, predict_threads
from mlops.batch.partitions import OutputPlan, Partition, PartitionResult
from mlops.core.settings import DEFAULT_SPEC
from tasks.batch import (
    Progress,
    failure_message,
    list_partitions,
    output_plan,
    publish_summary,
    read_batch_spec,
    resolve_model,
    score_partition,
    write_batch_manifest,
)

_runtime.install()  # heartbeat join and exit collection (see flows/_runtime.py)


@flow(name="batch-scoring-partitions", log_prints=False)
def score_partitions(partitions: list[Partition], plan: OutputPlan) -> tuple[
        dict[str, PartitionResult], dict[str, str], Progress]:
    """Score each partition as a mapped task on this flow's task runner (set by the caller);
    returns the results and the failures by input URL, and the progress."""
    progress = Progress(len(partitions))
    futures = score_partition.map(partitions, unmapped(plan))
    by_run = {f.task_run_id: p for f, p in zip(futures, partitions, strict=True)}
    results: dict[str, PartitionResult] = {}
    failures: dict[str, str] = {}
    for future in as_completed(futures):
        url = by_run[future.task_run_id].input.url
        outcome = future.result(raise_on_failure=False)
        if isinstance(outcome, PartitionResult):
            results[url] = outcome
        else:
            failures[url] = failure_message(outcome)
        progress.add(results.get(url))
    return results, failures, progress


@flow(name="batch-scoring", log_prints=False)
def batch_scoring(
    input_url: str,
    output_url: str,
    spec_path: str = DEFAULT_SPEC,
    version: int | None = None,
    task_runner: RunnerKind = "local",
    dask_address: str | None = None,
    dask_workers: int = 2,
) -> dict[str, Any] | State:
    """Score every row at `input_url` and write the scores to `output_url`.

    Args:
        input_url: The data to score: a file, a folder of Parquet or CSV partitions, a glob,
            or abfs://container/path. The target column is not needed.
        output_url: The folder that receives one Parquet file per input file and
            _manifest.json.
        spec_path: The model's pipeline spec (YAML); its `batch` section says what is copied.
        version: Score with this registered version instead of the champion.
        task_runner: Where partitions are scored: local (threads in this process) or dask.
        dask_address: With dask, the scheduler to use (tcp://host:8786); without it, a
            temporary local cluster of `dask_workers` processes.
        dask_workers: Worker processes of the temporary local Dask cluster.
    """
    with open_runner(task_runner, dask_address, dask_workers) as runner:
        spec = read_batch_spec(spec_path)
        plan = output_plan(spec, resolve_model(spec, version), output_url)
        runner.preload(plan.model, plan.probabilities, plan.fast)  # a temporary cluster starts
        partitions = list_partitions(input_url, spec)
        plan = replace(plan, predict_threads=predict_threads(task_runner, len(partitions)))
        results, failures, progress = score_partitions.with_options(
            task_runner=runner.task_runner())(partitions, plan)
    manifest = write_batch_manifest(input_url, plan, partitions, results, failures)
    summary = publish_summary(plan, manifest, progress, failures)
    get_run_logger().info("%s", summary)
    if failures:
        missing = "; ".join(f"{url}: {why}" for url, why in sorted(failures.items()))
        return Failed(message=f"{len(failures)} of {len(partitions)} partition(s) not "
                              f"scored: {missing}")
    return {"manifest": manifest, "rows": progress.rows, "failed_rows": progress.failed,
            "partitions": len(partitions), "model_version": plan.model.version}
