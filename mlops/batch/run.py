"""Score one partition end to end: skip it if finished, else read, score, write, publish.

`score_partition` is a plain function of picklable values (a `Partition`, an `OutputPlan`), so
a thread, a process or a Dask worker can run it. Each process loads the model once
(`scorer_for`) and keeps it for the partitions that follow. When partitions share a process's
cores (the local runner's threads), the plan's `predict_threads` caps the OpenMP threads of the
calling thread's tree walks, so two partitions on two cores do not run four threads that wait
on each other at every tree.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from mlops.batch import fast_cache
from mlops.batch.partitions import (
    ModelRef,
    OutputPlan,
    Partition,
    PartitionResult,
    copied_columns,
)
from mlops.batch.reading import open_batches
from mlops.batch.scorer import BatchScorer, ScoredBatch
from mlops.batch.writing import PartitionWriter, finished
from mlops.core.errors import BundleError
from mlops.data.storage import FileInfo, storage_options
from serving.bundle import (
    Bundle,
    carries_fast_path,
    load_bundle,
    read_bundle_files,
    read_fast_path,
    read_manifest,
)
from serving.fastpath.common import Unsupported
from serving.fastpath.trees import BoostedTrees, kernel_installed
from serving.scoring import Scorer

logger = logging.getLogger(__name__)

MODEL_NAME, MODEL_VERSION, SCORED_AT = "model_name", "model_version", "scored_at"
_scorers: dict[tuple[str, str, bool, bool], BatchScorer] = {}
_lock = threading.Lock()


def this_worker() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def scorer_for(model: ModelRef, probabilities: bool, fast: bool) -> BatchScorer:
    """The process's scorer for `model`, built once: from this machine's snapshot of its fast
    path when there is one (`mlops.batch.fast_cache`), else by loading the model with every
    check of `load_bundle` (and keeping a snapshot for the next process).

    Raises:
        BundleError: the bundle at the URL is not the version the run resolved (its digest
            differs); BundleLoadError as `load_bundle`.
    """
    key = (model.url, model.sha256, probabilities, fast)
    with _lock:
        if key not in _scorers:
            scorer = (_restored(model) if fast else None) or _loaded(model, fast)
            _scorers.clear()  # one model per process at a time
            _scorers[key] = BatchScorer(scorer, probabilities)
        return _scorers[key]


def _checked(model: ModelRef, bundle: Bundle) -> Bundle:
    if bundle.manifest["model_sha256"] != model.sha256:
        raise BundleError(
            f"bundle {model.url} holds model sha256 {bundle.manifest['model_sha256'][:12]}..., "
            f"the run resolved {model.sha256[:12]}... for {model.name} v{model.version}")
    return bundle


def _full_bundle(model: ModelRef) -> Bundle:
    """The bundle with its model loaded and every check of `load_bundle`."""
    return _checked(model, load_bundle(model.url, storage_options(model.url)))


def _loaded(model: ModelRef, fast: bool) -> Scorer:
    scorer = Scorer(_full_bundle(model), fast)
    snapshot = scorer.snapshot() if fast and fast_cache.cache_folder() is not None else None
    if snapshot is not None:
        fast_cache.keep(model.sha256, snapshot)
    return scorer


def _restored(model: ModelRef) -> Scorer | None:
    """The scorer built from a snapshot of the model's fast path: this machine's, else the one
    the bundle carries (then kept as this machine's); None when neither exists or fits, or
    when numba is not installed.

    Without numba a restored forest walks a batch with numpy, which takes more CPU than
    scikit-learn's own predictors (benchmarks/results/trees.md), and a loaded model walks with
    those: a process without numba pays the model's load once to score every row faster.
    """
    if not kernel_installed():
        return None
    kept = fast_cache.find(model.sha256)
    if kept is None and not _bundle_snapshot(model):
        return None  # the model loads, reading the bundle's files once
    options = storage_options(model.url)
    bundle = _checked(model, read_bundle_files(model.url, options))
    snapshot = kept if kept is not None else read_fast_path(bundle, options)
    if snapshot is None:
        return None
    where = "this machine's snapshot" if kept is not None else "the bundle's snapshot"
    try:
        scorer = Scorer.restored(bundle, snapshot, lambda: _full_bundle(model))
    except Unsupported as exc:
        logger.warning("The fast path snapshot of %s v%s (%s) cannot be used (%s); loading the "
                       "model", model.name, model.version, where, exc)
        fast_cache.forget(model.sha256)
        return None
    if kept is None:
        fast_cache.keep(model.sha256, snapshot)
    logger.debug("%s v%s: fast path read from %s", model.name, model.version, where)
    return scorer


def _bundle_snapshot(model: ModelRef) -> bool:
    """Whether the model's bundle says it carries a snapshot of its fast path that this code
    reads (the manifest's ``fast_path``; the file and its sha256 are checked when read)."""
    try:
        manifest = read_manifest(model.url, storage_options(model.url))
    except Exception:  # noqa: BLE001 - the model's load raises it again, with its context
        return False
    return carries_fast_path(manifest)


def snapshot_available(model: ModelRef) -> bool:
    """Whether a process builds the model's scorer from a snapshot, without scikit-learn."""
    return kernel_installed() and (
        fast_cache.snapshot_exists(model.sha256) or _bundle_snapshot(model))


def warm_scorer(model: ModelRef, probabilities: bool, fast: bool) -> None:
    """Load `model`'s scorer in this process (`scorer_for`), with HistGradientBoosting's
    compiled tree kernel (`serving.fastpath.compiled`), before a partition needs them. A
    failure here is left to the partitions: each one loads the model again and raises the
    error with its own context."""
    started = time.perf_counter()
    try:
        pipeline = scorer_for(model, probabilities, fast).scorer.fast
        if pipeline is not None and isinstance(pipeline.estimator, BoostedTrees):
            pipeline.estimator.forest.prepare_compiled()
        logger.debug("Preloaded %s v%s in %.1f s", model.name, model.version,
                     time.perf_counter() - started)
    except Exception as exc:  # noqa: BLE001 - each partition's own load raises it again
        logger.debug("Preloading %s v%s failed (%s); the partitions will load it", model.name,
                     model.version, exc)


def preload(model: ModelRef, probabilities: bool, fast: bool) -> threading.Thread:
    """Start `warm_scorer` on a thread while the caller sets up the partitions' tasks: the
    first partitions then find the model loaded (loading imports scikit-learn and checks the
    bundle, about 2 s, unless this machine keeps a snapshot of its fast path) and the tree
    kernel too. The local runner calls it in the flow's
    process; a temporary Dask cluster's workers run `warm_scorer` as they join
    (`mlops.batch.cluster.ScorerPreload`)."""
    thread = threading.Thread(target=warm_scorer, args=(model, probabilities, fast),
                              name="batch-preload", daemon=True)
    thread.start()
    return thread


def _output(batch: pa.RecordBatch, found: dict[str, str], copied: list[str],
            scored: ScoredBatch, model: ModelRef) -> pa.RecordBatch:
    n = batch.num_rows
    now = pa.scalar(datetime.now(UTC), pa.timestamp("us", tz="UTC"))
    arrays = [batch.column(found[name]) for name in copied] + scored.arrays + [
        pa.repeat(model.name, n), pa.repeat(model.version, n), pa.repeat(now, n)]
    names = [*copied, *scored.names, MODEL_NAME, MODEL_VERSION, SCORED_AT]
    return pa.RecordBatch.from_arrays(arrays, names=names)


def _empty_schema(copied: list[str], scorer: BatchScorer) -> pa.Schema:
    fields = [pa.field(name, pa.string()) for name in copied]
    fields += [pa.field(scorer.output_names[0], scorer.prediction_type)]
    fields += [pa.field(name, pa.float64()) for name in scorer.probability_names]
    fields += [pa.field(scorer.output_names[-1], pa.string()), pa.field(MODEL_NAME, pa.string()),
               pa.field(MODEL_VERSION, pa.string()),
               pa.field(SCORED_AT, pa.timestamp("us", tz="UTC"))]
    return pa.schema(fields)


def scored_batches(info: FileInfo, plan: OutputPlan, scorer: BatchScorer) -> Iterator[
        tuple[pa.RecordBatch, int]]:
    """The output batches of one input file, in order, each with its count of rows not scored.

    Raises:
        DataLoadError: as `open_batches`.
    """
    copied = copied_columns(plan)
    wanted = list(dict.fromkeys([*scorer.scorer.features, *copied]))
    with open_batches(info, wanted, plan.rows_per_batch, plan.fmt, plan.separator) as (
            found, batches):
        for batch in batches:
            if batch.num_rows:
                scored = scorer.score(batch)
                yield _output(batch, found, copied, scored, plan.model), scored.failed


def _openmp_threads(limit: int | None) -> Any:
    """A cap on this thread's OpenMP threads while it is entered (none for None)."""
    if limit is None:
        return nullcontext()
    from threadpoolctl import threadpool_limits  # noqa: PLC0415 - only when capped

    return threadpool_limits(limits=limit, user_api="openmp")


def score_partition(partition: Partition, plan: OutputPlan) -> PartitionResult:
    """Score one input file into its output file, unless a finished one holds its key.

    Raises:
        DataLoadError: the file cannot be read or lacks a needed column (named, with the
            file); nothing is published for it.
        BundleError, BundleLoadError: see `scorer_for`.
    """
    started = time.perf_counter()
    info = partition.input
    key = partition.key(plan)
    done = finished(plan.output_url, partition.output_name, key)
    if done is not None:
        logger.info("%s: finished by an earlier run (%d rows), skipped", info.url, done["rows"])
        return PartitionResult(info.url, partition.output_name, done["rows"],
                               done["failed_rows"], True, time.perf_counter() - started,
                               this_worker())
    scorer = scorer_for(plan.model, plan.probabilities, plan.fast)
    rows = failed = 0
    with _openmp_threads(plan.predict_threads), PartitionWriter(
            plan.output_url, partition.output_name, key, distinct=plan.ids) as out:
        for batch, bad in scored_batches(info, plan, scorer):
            out.write(batch)
            rows, failed = rows + batch.num_rows, failed + bad
        seconds = time.perf_counter() - started
        out.commit({"input": asdict(info), "model": asdict(plan.model), "rows": rows,
                    "failed_rows": failed, "seconds": round(seconds, 3)},
                   _empty_schema(copied_columns(plan), scorer))
    logger.info("%s: %d rows scored (%d could not be) in %.1f s, %.0f rows/s", info.url, rows,
                failed, seconds, rows / seconds if seconds else 0.0)
    return PartitionResult(info.url, partition.output_name, rows, failed, False, seconds,
                           this_worker())
