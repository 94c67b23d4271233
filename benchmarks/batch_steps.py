"""The contenders of the batch-scoring benchmark, each run in its own process.

``model``: fit the churn spec's pipeline on a sample and register it as the champion in this
run's state folder (``MLOPS_STATE_DIR``), so the benchmark needs nothing that exists before it;
then register the same model file again without a snapshot of its fast path in the bundle, as
a version registered before bundles carried one (or read by other fast path code) is.
``plain``: the baseline a person would write: for each Parquet file, read it whole with pandas,
call the pipeline's ``predict_proba`` once (the prediction is its arg-max, as the classifier's
``predict`` computes it), and write the ids, prediction and probabilities to Parquet. The model
is loaded once.
``flow``: the batch-scoring flow against a running Prefect server, on the local task runner, on
a Dask LocalCluster of worker processes it starts, or on a running cluster (``--address``);
``--no-cache`` turns this machine's snapshots off (``MLOPS_FASTPATH_CACHE=off``), as on a machine
that never scored the model; ``--version`` scores that version rather than the champion.
``cluster``: a Dask cluster that stays up until its input ends, started as the flow starts its
own (`mlops.batch.cluster.TemporaryCluster`); it prints its scheduler's address.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path

from benchmarks._measure import report

SPEC = "configs/churn.yaml"


def train_champion(rows: int) -> dict:
    from mlops.core.settings import get_settings
    from mlops.core.spec import load_spec
    from mlops.data.validation import validate_frame
    from mlops.model.bundle import dump_model, feature_dtypes
    from mlops.model.features import feature_frame, fit_pipeline
    from mlops.registry.backend import registry_for
    from tools.datasets import make_churn

    spec = load_spec(SPEC)
    frame = validate_frame(make_churn(rows, seed=2), spec)
    model = fit_pipeline(spec, frame)
    names = [c.name for c in spec.feature_columns]
    registry = registry_for(spec, get_settings())
    version = registry.register(
        spec.model_name, model_bytes=dump_model(model),
        features=feature_dtypes(feature_frame(frame, spec), names),
        lineage={"target": spec.target, "task": spec.task},
        reference=frame.sample(n=min(spec.reference_rows, len(frame)), random_state=0),
    )
    registry.set_alias(spec.model_name, version.version)
    bare = registry.register(
        spec.model_name, model_bytes=dump_model(model),
        features=feature_dtypes(feature_frame(frame, spec), names),
        lineage={"target": spec.target, "task": spec.task},
        reference=frame.sample(n=min(spec.reference_rows, len(frame)), random_state=0),
        fast_path=False,
    )
    return {"version": version.version, "bare_version": bare.version}


def plain(data_url: str, output_url: str) -> dict:
    import numpy as np
    import pandas as pd

    from mlops.core.settings import get_settings
    from mlops.core.spec import load_spec
    from mlops.data.storage import list_data_files
    from mlops.registry.backend import registry_for
    from serving.bundle import load_bundle

    started = time.perf_counter()
    spec = load_spec(SPEC)
    registry = registry_for(spec, get_settings())
    version = registry.alias(spec.model_name)
    bundle = load_bundle(registry.get(spec.model_name, version).url)
    model, features = bundle.model, bundle.feature_names
    ids = [c.name for c in spec.columns if c.role == "id"]
    classes = model.classes_
    out = Path(output_url)
    out.mkdir(parents=True, exist_ok=True)
    rows = 0
    for i, info in enumerate(list_data_files(data_url, "parquet")):
        frame = pd.read_parquet(info.url, columns=[*ids, *features])
        proba = model.predict_proba(frame[features])
        scores = frame[ids].copy()
        scores["prediction"] = classes[np.argmax(proba, axis=1)]
        for j, name in enumerate(classes):
            scores[f"probability_{name}"] = proba[:, j]
        scores["model_name"], scores["model_version"] = spec.model_name, str(version)
        scores.to_parquet(out / f"part-{i:05d}.parquet", index=False)
        rows += len(frame)
    return {"rows": rows, "scoring_s": time.perf_counter() - started}


def flow(data_url: str, output_url: str, runner: str, workers: int,
         address: str | None = None, version: int | None = None) -> dict:
    from flows.batch_scoring import batch_scoring

    started = time.perf_counter()
    result = batch_scoring(input_url=data_url, output_url=output_url, spec_path=SPEC,
                           version=version, task_runner=runner, dask_workers=workers,
                           dask_address=address)
    if not isinstance(result, dict):
        raise RuntimeError(f"the batch-scoring flow did not complete: {result}")
    return {"rows": result["rows"], "failed_rows": result["failed_rows"],
            "scoring_s": time.perf_counter() - started}


def cluster(workers: int) -> None:
    """Keep a cluster of `workers` processes up until stdin ends; print its address first."""
    import sys

    from mlops.batch.cluster import TemporaryCluster

    running = TemporaryCluster(workers)
    try:
        sys.stdout.write(running.address() + "\n")
        sys.stdout.flush()
        sys.stdin.read()
    finally:
        running.close()


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    parser = argparse.ArgumentParser()
    parser.add_argument("step", choices=["model", "plain", "flow", "cluster"])
    parser.add_argument("--data", help="the Parquet partitions to score")
    parser.add_argument("--out", help="the output folder")
    parser.add_argument("--rows", type=int, default=100_000, help="model: training rows")
    parser.add_argument("--runner", choices=["local", "dask"], default="local")
    parser.add_argument("--workers", type=int, default=2, help="flow on dask: processes")
    parser.add_argument("--address", help="flow on dask: a running cluster's scheduler")
    parser.add_argument("--no-cache", action="store_true",
                        help="flow: no snapshots kept on this machine (MLOPS_FASTPATH_CACHE=off)")
    parser.add_argument("--version", type=int, help="flow: this version, not the champion")
    args = parser.parse_args()
    if args.step == "model":
        report(**train_champion(args.rows))
    elif args.step == "cluster":
        cluster(args.workers)
    elif args.step == "plain":
        report(**plain(args.data, args.out))
    else:
        if args.no_cache:
            os.environ["MLOPS_FASTPATH_CACHE"] = "off"
        report(**flow(args.data, args.out, args.runner, args.workers, args.address,
                      args.version))


if __name__ == "__main__":
    main()
