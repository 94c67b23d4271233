"""The two contenders of the training benchmark, each run in its own process.

``plain``: the same load, validate, split, fit, evaluate (metrics, decision, picture),
register, deploy, smoke test and promote as the flow, as straight library calls with no
orchestration (the baseline).
``flow``: the Prefect training flow against a running Prefect server.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from benchmarks._measure import own_peak_bytes, report


def table_bytes(data_url: str) -> int:
    """In-memory size of the validated table the flow works on."""
    from mlops.core.spec import load_spec
    from mlops.data.loading import conform_columns, read_table
    from mlops.data.storage import list_data_files
    from mlops.data.validation import validate_frame

    spec = load_spec("configs/churn.yaml", {"data.url": data_url})
    raw = conform_columns(read_table(list_data_files(data_url)), spec)
    return int(validate_frame(raw, spec).memory_usage(deep=True).sum())


def plain(data_url: str) -> dict:
    import numpy as np

    from mlops.core.settings import get_settings
    from mlops.core.spec import load_spec
    from mlops.data.loading import conform_columns, read_table
    from mlops.data.storage import list_data_files
    from mlops.data.validation import validate_frame
    from mlops.endpoint.backend import endpoint_for
    from mlops.endpoint.payloads import frame_to_request
    from mlops.evaluation.gate import decide, decision_markdown
    from mlops.evaluation.plots import plot_comparison
    from mlops.evaluation.scoring import compute_metrics, score_model
    from mlops.model.bundle import dump_model, feature_dtypes
    from mlops.model.features import fit_pipeline, split_frame
    from mlops.registry.backend import registry_for

    spec = load_spec("configs/churn.yaml", {"data.url": data_url})
    settings = get_settings()
    raw = conform_columns(read_table(list_data_files(data_url)), spec)
    clean = validate_frame(raw, spec)
    train, test = split_frame(clean, spec)
    model = fit_pipeline(spec, train)
    predictions = score_model(model, test, spec)
    metrics = compute_metrics(spec.task, predictions)
    decision = decide(spec, metrics, None, None)
    assert decision.promote
    decision_markdown(decision, spec)
    plot_comparison(spec.task, predictions, None, settings.state_dir / "plain" / "evaluation.png")
    names = [c.name for c in spec.feature_columns]
    version = registry_for(spec, settings).register(
        spec.model_name, model_bytes=dump_model(model), features=feature_dtypes(train, names),
        lineage={"target": spec.target, "task": spec.task, "metrics": metrics},
        reference=train.sample(n=min(spec.reference_rows, len(train)),
                               random_state=0)[[*names, spec.target]],
    )
    client = endpoint_for(spec, settings)
    live = [k for k, v in client.state()["traffic"].items() if v > 0]
    target = "green" if live == ["blue"] else "blue"
    client.put_deployment(target, version.url)
    rows = test[names].head(spec.endpoint.smoke_rows)
    answer = client.score(frame_to_request(rows), deployment=target)
    assert np.array_equal(np.asarray(answer["predictions"]).astype(str),
                          np.asarray(model.predict(rows)).astype(str))
    client.set_traffic({target: 100, **({live[0]: 0} if live else {})})
    registry_for(spec, settings).set_alias(spec.model_name, version.version)
    return {"outcome": "promoted", "version": version.version}


SPEC = "configs/churn.yaml"


def untracked_spec(folder: Path) -> str:
    """configs/churn.yaml with `tracking.enabled: false` (the same spec hash: tracking is not
    part of it), so the same cached stages serve both."""
    import yaml

    spec = yaml.safe_load(Path(SPEC).read_text())
    spec["tracking"] = {"enabled": False}
    path = folder / "churn-untracked.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(spec))
    return str(path)


def flow(data_url: str, stage_peaks: bool, tracking: bool = True) -> tuple[dict, dict]:
    """The flow's result, and its peak memory: overall, and per stage if asked.

    The per-stage figures come from a thread that wakes every 10 ms and competes with the
    fit's OpenMP threads for the two cores; the plain script has nothing of the kind, so timed
    comparisons run without it.
    """
    from flows.training import training
    from mlops.core.settings import get_settings

    spec = SPEC if tracking else untracked_spec(get_settings().state_dir)
    if not stage_peaks:
        return training(spec_path=spec, data_url=data_url), {}
    from benchmarks._peaks import StagePeaks

    with StagePeaks() as peaks:
        result = training(spec_path=spec, data_url=data_url)
    peak = max(peaks.overall, own_peak_bytes())
    return result, {"peak_rss_bytes": peak, "stage_peaks": peaks.peaks}


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    parser = argparse.ArgumentParser()
    parser.add_argument("step", choices=["plain", "flow", "table"])
    parser.add_argument("--data", required=True)
    parser.add_argument("--stage-peaks", action="store_true",
                        help="flow: also record each stage's peak memory (an extra thread)")
    parser.add_argument("--no-tracking", action="store_true",
                        help="flow: with the spec's tracking turned off (no MLflow run)")
    args = parser.parse_args()
    if args.step == "table":
        report(table_bytes=table_bytes(args.data))
    elif args.step == "flow":
        result, memory = flow(args.data, args.stage_peaks, tracking=not args.no_tracking)
        report(result=result, **memory)
    else:
        report(result=plain(args.data))


if __name__ == "__main__":
    main()
