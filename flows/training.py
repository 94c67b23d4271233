"""The training flow: data to a model serving behind the endpoint, never a worse one.

load -> validate -> features -> train -> evaluate_vs_champion -> register -> deploy -> smoke_test
-> promote. Run it with ``python -m flows.training --spec configs/churn.yaml``.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from mlops.settings import get_settings
from tasks._options import run_stage
from tasks.data import load_data, locate_data, read_spec, validate_data
from tasks.deploy import deploy_model, promote, smoke_test
from tasks.evaluation import evaluate_vs_champion
from tasks.features import build_features
from tasks.registry import register_model
from tasks.training import train_model


@flow(name="training", log_prints=False)
def training(
    spec_path: str = "configs/churn.yaml",
    data_url: str | None = None,
    force: bool = False,
    reason: str | None = None,
    report_url: str | None = None,
) -> dict:
    """Train, judge against the champion and, if better, ship it.

    Args:
        spec_path: The model's pipeline spec (YAML).
        data_url: Read this data instead of the spec's (a file, folder, glob or abfs:// URL).
        force: Recompute every stage even when a cached result for the same inputs exists.
        reason: Why this run was started (a schedule, new data, drift); shown in the logs.
        report_url: The report behind that reason (the drift check's), if any.
    """
    logger = get_run_logger()
    if reason:
        logger.info("Started because: %s%s", reason, f" (report: {report_url})" if report_url else "")
    spec = read_spec(spec_path, data_url)
    run_dir = Path(get_settings().outputs_location) / spec.name / str(flow_run.id or "local")

    data = locate_data(spec)
    raw = run_stage(load_data, data, spec, force=force)
    clean = run_stage(validate_data, raw, data, spec, force=force)
    split = run_stage(build_features, clean, data, spec, force=force)
    trained = train_model.with_options(refresh_cache=force)(split, data, spec)
    evaluation = evaluate_vs_champion(trained, split, data, spec, str(run_dir))
    if not evaluation.decision.promote:
        logger.info(
            "Champion v%s retained: %s",
            evaluation.champion_version, "; ".join(evaluation.decision.reasons),
        )
        return {"outcome": "retained", "champion": evaluation.champion_version}

    version = register_model(trained, split, data, spec, evaluation, raw.rows)
    plan = deploy_model(version, spec)
    smoke_test(plan, trained, split, spec)
    traffic = promote(plan, version, spec)
    return {"outcome": "promoted", "version": version.version, "traffic": traffic}


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Run the training flow once.")
    parser.add_argument("--spec", default="configs/churn.yaml")
    parser.add_argument("--data-url", default=None)
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args()
    training(spec_path=args.spec, data_url=args.data_url, force=args.force)
