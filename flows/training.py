"""The training flow: data to a model serving behind the endpoint, never a worse one.

load -> validate -> label drift -> features -> train -> evaluate_vs_champion -> register ->
(each environment before production, if the spec names them) -> deploy -> smoke_test ->
promote. Each run is also an MLflow run, whatever its outcome (docs/tracking.md).
Run it once with ``mlops train``.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from flows import _runtime
from mlops.core.settings import DEFAULT_SPEC, get_settings
from mlops.core.spec import PipelineSpec
from mlops.tracking.recorder import Recorder
from tasks._environments import release_to_environments
from tasks._options import run_stage
from tasks._slots import training_slot
from tasks.approval import record_verdict, request_approval, withdraw_candidate
from tasks.data import load_data, locate_data, read_spec, validate_data
from tasks.deploy import deploy_model, promote, smoke_test
from tasks.evaluation import check_label_drift, evaluate_vs_champion, record_retained
from tasks.features import build_features
from tasks.notify import CANDIDATE_REJECTED, announce_model_event
from tasks.registry import register_model
from tasks.tracking import track_evaluation, track_outcome, tracked_run
from tasks.training import train_model

_runtime.install()  # heartbeat join and exit collection (see flows/_runtime.py)


@flow(name="training", log_prints=False)
def training(
    spec_path: str = DEFAULT_SPEC,
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

    with training_slot(spec.name), tracked_run(spec, "training") as recorder:
        result = _train_and_ship(
            spec, run_dir, recorder, force, require_approval, approval_timeout_s,
            expect_label_shift, reason,
        )
        track_outcome(recorder, result)
        return result


def _train_and_ship(
    spec: PipelineSpec, run_dir: Path, recorder: Recorder | None, force: bool,
    require_approval: bool, approval_timeout_s: int, expect_label_shift: bool,
    reason: str | None,
) -> dict:
    logger = get_run_logger()
    data = locate_data(spec)
    raw = run_stage(load_data, data, spec, force=force)
    clean = run_stage(validate_data, raw, data, spec, force=force)
    check_label_drift(clean, data, spec, expect_label_shift)
    split = run_stage(build_features, clean, data, spec, force=force)
    trained = train_model.with_options(refresh_cache=force)(split, data, spec)
    evaluation = evaluate_vs_champion(trained, split, data, spec, str(run_dir))
    track_evaluation(recorder, evaluation, data, spec, str(run_dir))
    if not evaluation.decision.promote:
        logger.info(
            "Champion v%s retained: %s",
            evaluation.champion_version, "; ".join(evaluation.decision.reasons),
        )
        record_retained(evaluation, spec, reason)
        announce_model_event(CANDIDATE_REJECTED, spec.model_name, {
            "reason": "; ".join(evaluation.decision.reasons), "by": "gate",
            "champion_version": evaluation.champion_version})
        return {"outcome": "retained", "champion": evaluation.champion_version}

    version = register_model(trained, split, data, spec, evaluation, raw.rows, recorder)
    staged_out = release_to_environments(version, trained, split, spec, evaluation, reason,
                                         approval_timeout_s)
    if staged_out:
        announce_model_event(CANDIDATE_REJECTED, spec.model_name, {
            "reason": staged_out, "by": "approval", "version": version.version})
        return {"outcome": "rejected", "version": version.version, "reason": staged_out}
    plan = deploy_model(version, spec)
    smoke_test(plan, trained, split, spec)
    if require_approval:
        verdict = request_approval(evaluation, plan, approval_timeout_s)
        record_verdict(plan, spec, verdict, evaluation.champion_version)
        if not verdict.approved:
            withdraw_candidate(plan, spec, verdict.reason, evaluation.champion_version)
            logger.warning(
                "%s v%s not promoted: %s. Traffic and champion unchanged (champion: %s).",
                version.name, version.version, verdict.reason,
                f"v{evaluation.champion_version}" if evaluation.champion_version else "none",
            )
            announce_model_event(CANDIDATE_REJECTED, spec.model_name, {
                "reason": verdict.reason, "by": "approval", "version": version.version})
            return {"outcome": "rejected", "version": version.version, "reason": verdict.reason}
        logger.info("%s v%s %s", version.name, version.version, verdict.reason)
    traffic = promote(plan, version, spec, reason, recorder)
    return {"outcome": "promoted", "version": version.version, "traffic": traffic}
