"""Tree-walk benchmark: the fast path's compiled kernel against scikit-learn's tree predictors.

One command: ``python -m benchmarks.bench_trees`` (``make bench-trees``). It fits the churn
spec's pipeline on ``--train-rows`` rows (as the batch benchmark's model step does), transforms
``--rows`` other rows with the pipeline's steps, and then walks the fitted
HistGradientBoosting model's trees over that array in one process and one thread:

- ``scikit-learn``: the estimator's ``_raw_predict``, its per-tree predictors (the baseline;
  what ``predict_proba`` calls);
- ``compiled kernel``: ``serving.fastpath.trees.Forest.raw``, which a batch's rows reach
  (`serving.fastpath.compiled`);
- ``numpy walk`` (``--numpy``): the same forest without numba, as a restored snapshot walks
  when numba is not installed.

Every contender gives the raw sums; the benchmark checks they are bit-identical to the
baseline's before it times anything. The contenders run ``--repeat`` interleaved rounds; CPU
time (the process's, so another process's load does not count) and wall time are reported as
medians, with the ratio to the baseline. The walk is the largest part of a batch worker's CPU
time (about half of a 1M-row partition's: docs/batch-scoring.md). Figures go to
``benchmarks/results/trees.md``.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks._measure import machine, stamp

logger = logging.getLogger("bench_trees")
RESULTS = Path("benchmarks/results/trees.md")
SPEC = "configs/churn.yaml"
BASELINE = "scikit-learn"


def fitted(train_rows: int, rows: int) -> tuple[Any, Any]:
    """The churn pipeline's HistGradientBoosting estimator, and `rows` rows transformed by
    the steps before it (float64, C order: what the fast path hands the forest)."""
    import numpy as np

    from mlops.core.spec import load_spec
    from mlops.data.validation import validate_frame
    from mlops.model.features import feature_frame, fit_pipeline
    from tools.datasets import make_churn

    spec = load_spec(SPEC)
    model = fit_pipeline(spec, validate_frame(make_churn(train_rows, seed=2), spec))
    frame = feature_frame(validate_frame(make_churn(rows, seed=3), spec), spec)
    X = np.ascontiguousarray(model[:-1].transform(frame), dtype=np.float64)
    return model[-1], X


def contenders(estimator: Any, numpy_walk: bool) -> dict[str, Callable[[Any], Any]]:
    from serving.fastpath.trees import Forest

    kernel = Forest(estimator)
    kernel.prepare_compiled()  # numba imported and the kernel loaded before timing
    walks: dict[str, Callable[[Any], Any]] = {BASELINE: estimator._raw_predict,
                                              "compiled kernel": kernel.raw}
    if numpy_walk:
        restored = Forest.restored(kernel.per_iteration, kernel.n_features,
                                   {name: getattr(kernel, name) for name in Forest.ARRAYS})
        restored.without_kernel()
        walks["numpy walk"] = restored.raw
    return walks


def measure(walks: dict[str, Callable[[Any], Any]], X: Any, repeat: int,
            ) -> dict[str, dict[str, list[float]]]:
    """CPU and wall seconds per contender and round, the rounds interleaved.

    Raises:
        AssertionError: a contender's sums differ from the baseline's in any bit.
    """
    expected = walks[BASELINE](X).tobytes()
    for name, walk in walks.items():
        if walk(X).tobytes() != expected:
            raise AssertionError(f"{name}'s sums differ from {BASELINE}'s")
    times: dict[str, dict[str, list[float]]] = {n: {"cpu": [], "wall": []} for n in walks}
    for round_ in range(repeat):
        for name, walk in walks.items():
            cpu, wall = time.process_time(), time.perf_counter()
            walk(X)
            times[name]["cpu"].append(time.process_time() - cpu)
            times[name]["wall"].append(time.perf_counter() - wall)
        logger.info("round %d of %d: %s", round_ + 1, repeat, {
            n: round(t["cpu"][-1], 2) for n, t in times.items()})
    return times


def table(times: dict[str, dict[str, list[float]]], rows: int) -> list[str]:
    base = statistics.median(times[BASELINE]["cpu"])
    lines = ["| contender | CPU s (median) | CPU s per round | wall s (median) | "
             "rows/s of CPU | baseline's CPU / contender's |", "|---|---|---|---|---|---|"]
    for name, t in times.items():
        cpu = statistics.median(t["cpu"])
        rounds = ", ".join(f"{s:.2f}" for s in t["cpu"])
        lines.append(f"| {name} | {cpu:.2f} | {rounds} | {statistics.median(t['wall']):.2f} | "
                     f"{rows / cpu:,.0f} | {base / cpu:.2f}x |")
    return lines


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--train-rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--numpy", action="store_true", help="time the numpy walk too")
    args = parser.parse_args()
    if "numpy" in sys.modules:
        raise RuntimeError("numpy was imported before the thread count was set")
    os.environ["OMP_NUM_THREADS"] = "1"  # before numpy and scikit-learn: one thread each
    load_start = os.getloadavg()[0]
    estimator, X = fitted(args.train_rows, args.rows)
    n_trees = sum(len(iteration) for iteration in estimator._predictors)
    times = measure(contenders(estimator, args.numpy), X, args.repeat)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join([
        "# Tree-walk benchmark", "",
        f"Measured {stamp()} on {machine()}. Load average (1 min) {load_start:.2f} at the "
        f"start, {os.getloadavg()[0]:.2f} at the end.",
        f"Command: `python -m benchmarks.bench_trees --rows {args.rows} --train-rows "
        f"{args.train_rows} --repeat {args.repeat}{' --numpy' if args.numpy else ''}`. The churn "
        f"spec's model ({n_trees} trees, fitted on {args.train_rows:,} rows) walked over "
        f"{args.rows:,} transformed rows ({X.shape[1]} columns) in one thread; the sums of every "
        "contender were checked bit-identical to scikit-learn's first. Rounds interleaved; "
        "CPU time is the process's.", "",
        *table(times, args.rows), ""]))
    logger.info("Wrote %s", RESULTS)


if __name__ == "__main__":
    main()
