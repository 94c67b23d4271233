"""The training flow: data to a model serving behind the endpoint, never a worse one.

load -> validate -> label drift -> features -> train -> evaluate_vs_champion -> register -> deploy
-> smoke_test -> promote. Run it with ``python -m flows.training --spec configs/churn.yaml``.
"""

from __future__ import annotations

if __name__ == "__main__":  # run as a script: Prefect's settings, before Prefect reads them
    from flows import _prefect_env

    _prefect_env.apply()

from pathlib import Path  # noqa: E402

from prefect import flow, get_run_logger  # noqa: E402
from prefect.runtime import flow_run  # noqa: E402

from flows import _engine, _exit  # noqa: E402
from mlops.core.settings import get_settings  # noqa: E402
from mlops.core.spec import PipelineSpec  # noqa: E402
from tasks._options import run_stage  # noqa: E402
from tasks._slots import training_slot  # noqa: E402
from tasks.approval import request_approval, withdraw_candidate  # noqa: E402
from tasks.data import load_data, locate_data, read_spec, validate_data  # noqa: E402
from tasks.deploy import deploy_model, promote, smoke_test  # noqa: E402
from tasks.evaluation import check_label_drift, evaluate_vs_champion  # noqa: E402
from tasks.features import build_features  # noqa: E402
from tasks.registry import register_model  # noqa: E402
from tasks.training import train_model  # noqa: E402

_engine.install()  # a flow run ends when its work does (see flows/_engine.py)
_exit.install()  # and its process exits without a last collection of the heap (flows/_exit.py)


@flow(name="training", log_prints=False)
def training(
    spec_path: str = "configs/churn.yaml",
    data_url: str | None = None,
    force: bool = False,
    require_approval: bool = False,
    approval_timeout_s: int = 3600,
    reason: str | None = None,
    report_url: str | None = None,
    expect_label_shift: bool = False,
) -> dict:
    """Train, judge against the champion and, if better, ship it.

    Args:
        spec_path: The model's pipeline spec (YAML).
        data_url: Read this data instead of the spec's (a file, folder, glob or abfs:// URL).
        force: Recompute every stage even when a cached result for the same inputs exists.
        require_approval: Pause after the smoke test until a person approves the candidate.
        approval_timeout_s: How long to wait for that approval; no answer rejects.
        reason: Why this run was started (a schedule, new data, drift); shown in the logs.
        report_url: The report behind that reason (the drift check's), if any.
        expect_label_shift: The target's distribution is meant to have moved from the
            champion's training data (a new definition, a new population): train anyway.
    """
    logger = get_run_logger()
    if reason:
        logger.info("Started because: %s (report: %s)", reason, report_url or "none")
    spec = read_spec(spec_path, data_url)
    run_dir = Path(get_settings().outputs_location) / spec.name / str(flow_run.id or "local")

    with training_slot(spec.name):
        return _train_and_ship(
            spec, run_dir, force, require_approval, approval_timeout_s, expect_label_shift
        )


def _train_and_ship(
    spec: PipelineSpec, run_dir: Path, force: bool, require_approval: bool,
    approval_timeout_s: int, expect_label_shift: bool,
) -> dict:
    logger = get_run_logger()
    data = locate_data(spec)
    raw = run_stage(load_data, data, spec, force=force)
    clean = run_stage(validate_data, raw, data, spec, force=force)
    check_label_drift(clean, data, spec, expect_label_shift)
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
    if require_approval:
        verdict = request_approval(evaluation, plan, approval_timeout_s)
        if not verdict.approved:
            withdraw_candidate(plan, spec)
            logger.warning(
                "%s v%s not promoted: %s. Traffic and champion unchanged (champion: %s).",
                version.name, version.version, verdict.reason,
                f"v{evaluation.champion_version}" if evaluation.champion_version else "none",
            )
            return {"outcome": "rejected", "version": version.version, "reason": verdict.reason}
        logger.info("%s v%s %s", version.name, version.version, verdict.reason)
    traffic = promote(plan, version, spec)
    return {"outcome": "promoted", "version": version.version, "traffic": traffic}

if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Run the training flow once.")
    parser.add_argument("--spec", default="configs/churn.yaml")
    parser.add_argument("--data-url", default=None)
    parser.add_argument("--force", action="store_true")
    parser.add_argument("--require-approval", action="store_true")
    args = parser.parse_args()
    training(
        spec_path=args.spec, data_url=args.data_url, force=args.force,
        require_approval=args.require_approval,
    )
