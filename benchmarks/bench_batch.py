"""Batch-scoring benchmark: the flow against a plain pandas script, and its memory at scale.

One command: ``python -m benchmarks.bench_batch`` (``make bench-batch``). In one run, on one
machine, it

- trains a churn model on a sample and makes it the champion in the benchmark's own state
  (``benchmarks/.work/batch/``), so nothing has to exist before;
- scores generated churn data (Parquet, ``--rows-per-partition`` rows per file and at least
  ``MIN_PARTITIONS`` files, so two workers both have work) at each ``--rows`` size with three
  contenders: ``plain``, a script that reads each file whole with pandas, calls the
  pipeline's ``predict_proba`` and writes ids, prediction and probabilities to Parquet; the
  batch-scoring flow on its local task runner (one process); the flow on a Dask LocalCluster
  of two worker processes that it starts; and the flow on a cluster of two worker processes
  that stays up for the whole benchmark (``batch_steps cluster``), as a team that scores often
  would keep one, after one run on it that is not counted (its workers then hold the model);
  the flow on its local runner as a model's first run on a machine, with no snapshot of the
  model's fast path kept on the machine (``MLOPS_FASTPATH_CACHE=off``), so it reads the one
  the registered bundle carries; and the same on a version registered without one in its
  bundle, which loads the model (a version registered before bundles carried one, or read by
  code other than the one that wrote it).
  Rounds are interleaved (``--repeat``); rows per second come from each process's wall time
  (interpreter, imports, model load and, for a cluster the flow starts, the cluster's start
  included), the ratios are medians of each round's ratio (targets: at least 1.0x plain on
  one process, 1.6x with two);
- measures the peak memory of each contender's whole process tree (Dask's worker processes
  included; not the running cluster's, whose processes are not the flow's, nor the
  first runs') at each ``--memory-sizes`` size, as PSS summed (shared pages counted
  once) and as RSS summed (targets, judged on PSS, for the flow on either runner: the peaks
  at the sizes within 10% of each other, all below 1.5 GB),

and writes the figures to ``benchmarks/results/batch.md``. Every run writes to a fresh output
folder, removed after it: the flow would skip partitions a previous run finished.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from benchmarks._measure import machine, prefect_server, run_measured, stamp
from tools.datasets import MAX_ROWS, write_churn

logger = logging.getLogger("bench_batch")
WORK = Path("benchmarks/.work/batch")
RESULTS = Path("benchmarks/results/batch.md")
SNAPSHOTS = WORK / "fastpath"  # the benchmark's own snapshot cache (mlops.batch.fast_cache)
MIN_PARTITIONS = 4
ONE_PROCESS, TWO_PROCESSES = 1.0, 1.6  # rows/s targets, per row/s of the plain script
SAME_PEAK = 0.10  # the flow's peaks at the memory sizes: at most this far apart
PEAK_LIMIT = 1.5e9  # bytes
CONTENDERS = {  # label -> batch_steps arguments
    "plain": ["plain"],
    "flow, local runner (1 process)": ["flow", "--runner", "local"],
    "flow, Dask (2 worker processes)": ["flow", "--runner", "dask", "--workers", "2"],
    "flow, Dask (running cluster of 2 worker processes)": ["flow", "--runner", "dask"],
    "flow, local runner, a model's first run on a machine (the bundle's snapshot)": [
        "flow", "--runner", "local", "--no-cache"],
    "flow, local runner, first run, a bundle without a snapshot (the model loaded)": [
        "flow", "--runner", "local", "--no-cache", "--version", "2"],
}
PLAIN, LOCAL, DASK, RUNNING, COLD, BARE = CONTENDERS
BARE_VERSION = 2  # the model step registers the champion (1), then this version of it


def _data(rows: int, per_partition: int) -> str:
    """Generated churn rows in Parquet files of `per_partition` rows (at least
    MIN_PARTITIONS files); above MAX_ROWS, in subfolders of MAX_ROWS rows with distinct seeds
    (the flow and the plain script list folders recursively)."""
    folder = WORK / "data" / f"churn-{rows}-{per_partition}"
    if (folder / ".done").exists():
        return str(folder)
    shutil.rmtree(folder, ignore_errors=True)
    chunks = [min(MAX_ROWS, rows - first) for first in range(0, rows, MAX_ROWS)]
    for k, n in enumerate(chunks):
        parts = max(MIN_PARTITIONS // len(chunks), -(-n // per_partition), 1)
        logger.info("Generating %d rows in %d files", n, parts)
        write_churn(str(folder / f"chunk-{k:02d}"), n_rows=n, partitions=min(parts, n),
                    seed=1 + k)
    (folder / ".done").touch()
    return str(folder)


def _env() -> dict[str, str]:
    return {"MLOPS_STATE_DIR": str(WORK / "state"), "PREFECT_HOME": str(WORK / "state" / "prefect"),
            "PREFECT_LOGGING_LEVEL": "WARNING", "MLOPS_FASTPATH_CACHE": str(SNAPSHOTS.resolve())}


def _step(args: list[str], label: str, tree: bool = False) -> dict:
    load = os.getloadavg()[0]
    logger.info("Running %s (load average %.2f)", label, load)
    result = run_measured(["benchmarks.batch_steps", *args], env=_env(),
                          log=WORK / "logs" / f"{label}.log", tree=tree)
    logger.info("%s: %.1f s, peak %.0f MB (PSS of the tree %.0f MB)", label, result["wall_s"],
                result.get("tree_peak_rss_bytes", result["peak_rss_bytes"]) / 1e6,
                result.get("tree_peak_pss_bytes", 0) / 1e6)
    return {**result, "load": load}


@contextmanager
def _running_cluster(workers: int = 2) -> Iterator[str]:
    """A cluster of `workers` processes up until the block ends; yields its address."""
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.batch_steps", "cluster",
                             "--workers", str(workers)], env={**os.environ, **_env()},
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        address = proc.stdout.readline().strip() if proc.stdout else ""
        if not address:
            raise RuntimeError(f"the running cluster did not start (exit {proc.wait()})")
        logger.info("Running cluster at %s", address)
        yield address
    finally:
        if proc.stdin:
            proc.stdin.close()
        proc.wait(60)


def _score(name: str, data: str, label: str, tree: bool = False,
           address: str | None = None) -> dict:
    out = WORK / "out" / label
    shutil.rmtree(out, ignore_errors=True)
    on = ["--address", address] if name == RUNNING and address else []
    try:
        result = _step([*CONTENDERS[name], *on, "--data", data, "--out", str(out)], label, tree)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return result


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def _throughput(rows: int, data: str, repeat: int, address: str) -> list[str]:
    runs: dict[str, list[dict]] = {name: [] for name in CONTENDERS}
    for i in range(1, repeat + 1):  # interleaved, so a busy spell hits every contender
        for n, name in enumerate(CONTENDERS):
            runs[name].append(_score(name, data, f"rows-{rows}-{n}-{i}", address=address))
    for name, results in runs.items():
        if any(r["rows"] != rows for r in results):
            raise RuntimeError(f"{name} scored {[r['rows'] for r in results]} rows, not {rows}")
    targets = {LOCAL: ONE_PROCESS, DASK: TWO_PROCESSES, RUNNING: TWO_PROCESSES,
               COLD: ONE_PROCESS, BARE: ONE_PROCESS}
    lines = [
        f"## Rows per second, {rows:,} rows ({repeat} round{'s' if repeat > 1 else ''})", "",
        "| contender | wall time (median) | each round | rows/s (median) | rows/s after start "
        "(median) | / plain (median of rounds) | target |", "|---|---|---|---|---|---|---|",
    ]
    ratios: dict[str, list[float]] = {}
    for name, results in runs.items():
        walls = [r["wall_s"] for r in results]
        ratios[name] = [p["wall_s"] / r["wall_s"] for p, r in
                        zip(runs[PLAIN], results, strict=True)]
        ratio = statistics.median(ratios[name])
        target = (f">= {targets[name]:.1f}x {_met(ratio >= targets[name])}"
                  if name in targets else "")
        lines.append(
            f"| {name} | {statistics.median(walls):.1f} s | "
            f"{' / '.join(f'{w:.1f}' for w in walls)} | {rows / statistics.median(walls):,.0f} | "
            f"{rows / statistics.median(r['scoring_s'] for r in results):,.0f} | "
            f"{ratio:.2f}x | {target} |")
    loads = " / ".join(f"{r['load']:.1f}" for rnd in zip(*runs.values(), strict=True)
                       for r in rnd)
    return [*lines, "",
            "Each round's ratio to plain: " + "; ".join(
                f"{name} {', '.join(f'{x:.2f}' for x in ratios[name])}"
                for name in (LOCAL, DASK, RUNNING, COLD, BARE)) + ".",
            f"Load average (1 min) at the start of each run, in order: {loads}.",
            "The running cluster is started once, before the first size, and scored on once "
            "before the rounds without being counted: its workers keep the imports and the "
            "model from run to run, as a cluster that stays up does; its start is in no "
            "contender's time. That run is also the first to read the model: it keeps the "
            "snapshot of the model's fast path that the bundle carries on the machine "
            "(mlops.batch.fast_cache, in the benchmark's own cache folder, emptied at its "
            "start), where the later runs of the local runner and of the temporary cluster "
            "read it. The two first-run contenders keep nothing on the machine "
            "(MLOPS_FASTPATH_CACHE=off): one reads the snapshot the champion's bundle "
            "carries; the other scores version 2, the same model file registered without "
            "one, so it loads the model (skops, scikit-learn and the checks of load_bundle) "
            "as every first run did before bundles carried a snapshot.", ""]


def _memory(sizes: list[int], per_partition: int) -> list[str]:
    peaks: dict[str, list[dict]] = {name: [] for name in CONTENDERS
                                    if name not in (RUNNING, COLD, BARE)}
    for rows in sizes:
        data = _data(rows, per_partition)
        for n, name in enumerate(peaks):
            peaks[name].append(_score(name, data, f"memory-{rows}-{n}", tree=True))
    lines = [
        "## Peak memory of the process tree", "",
        "| contender | " + " | ".join(f"{n:,} rows: PSS (RSS)" for n in sizes)
        + " | highest / lowest (PSS) | target |", "|---|" + "---|" * (len(sizes) + 2),
    ]
    for name, results in peaks.items():
        values = [r["tree_peak_pss_bytes"] for r in results]
        spread = max(values) / min(values)
        target = "" if name == PLAIN else (
            f"within {SAME_PEAK:.0%} {_met(spread <= 1 + SAME_PEAK)}, below "
            f"{PEAK_LIMIT / 1e9:.1f} GB {_met(max(values) < PEAK_LIMIT)}")
        lines.append(f"| {name} | " + " | ".join(
            f"{_gib(r['tree_peak_pss_bytes'])} ({_gib(r['tree_peak_rss_bytes'])})"
            for r in results) + f" | {spread:.2f} | {target} |")
    return [*lines, "",
            "The memory of the contender's process and all its descendants, sampled every 50 ms "
            "by the benchmark; for Dask, the flow's process (scheduler and nannies) and both "
            "worker processes. The targets are judged on the proportional set size (PSS) "
            "summed over the tree: a page the processes share (the libraries every process "
            "maps: numpy, pandas, pyarrow, scikit-learn, numba's LLVM) counts once, divided "
            "among the processes that map it, so the sum is what the tree takes of the "
            "machine's memory. The resident size (RSS) summed, in brackets, counts a shared "
            "page once per process that maps it (and is at least the process's own peak as "
            "the kernel counts it); for one process the two are close. The plain script reads "
            "a whole file at a time, so its peak follows the partition size.", ""]


def _write(lines: list[str], args: argparse.Namespace, load: tuple[float, float],
           model: dict) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    header = [
        "# Batch-scoring benchmark", "",
        f"Measured {stamp()} on {machine()}. Load average (1 min) {load[0]:.2f} at the start, "
        f"{load[1]:.2f} at the end: the machine is shared, so wall times move between runs.",
        f"Command: `python -m benchmarks.bench_batch --rows {args.rows} --memory-sizes "
        f"{args.memory_sizes} --repeat {args.repeat} --rows-per-partition "
        f"{args.rows_per_partition}`. Spec: configs/churn.yaml; the model (version "
        f"{model['version']}) is fitted on {args.train_rows:,} rows. Input: Parquet files of "
        f"{args.rows_per_partition:,} rows (at least {MIN_PARTITIONS} files). "
        f"OMP_NUM_THREADS: {os.environ.get('OMP_NUM_THREADS', 'unset')} (Dask's workers set "
        "it to 1). Wall time includes process start and imports.", "",
    ]
    RESULTS.write_text("\n".join(header + lines))
    logger.info("Wrote %s", RESULTS)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="1000000,10000000", help="sizes timed, comma-separated")
    parser.add_argument("--memory-sizes", default="10000000,50000000",
                        help="sizes whose peak memory is measured, comma-separated")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved rounds per size")
    parser.add_argument("--rows-per-partition", type=int, default=1_000_000)
    parser.add_argument("--train-rows", type=int, default=100_000)
    args = parser.parse_args()
    shutil.rmtree(WORK / "state", ignore_errors=True)
    shutil.rmtree(SNAPSHOTS, ignore_errors=True)
    (WORK / "logs").mkdir(parents=True, exist_ok=True)
    load_start = os.getloadavg()[0]
    server, api_url = prefect_server(WORK / "prefect-server-home", WORK / "prefect-server.log")
    os.environ["PREFECT_API_URL"] = api_url
    try:
        model = _step(["model", "--rows", str(args.train_rows)], "model")
        if model["bare_version"] != BARE_VERSION:
            raise RuntimeError(f"the model step registered {model}, not versions 1 and "
                               f"{BARE_VERSION}")
        lines: list[str] = []
        sizes = [int(n) for n in args.rows.split(",")]
        with _running_cluster() as address:
            # its workers load the model on their first partitions, and keep it
            _score(RUNNING, _data(sizes[0], args.rows_per_partition), "running-cluster-warm-up",
                   address=address)
            for rows in sizes:
                lines += _throughput(rows, _data(rows, args.rows_per_partition), args.repeat,
                                     address)
        lines += _memory([int(n) for n in args.memory_sizes.split(",")],
                         args.rows_per_partition)
    finally:
        server.terminate()
    _write(lines, args, (load_start, os.getloadavg()[0]), model)


if __name__ == "__main__":
    main()
