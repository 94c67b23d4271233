"""The drift check: has what the endpoint sees moved away from what the champion learned?

reference (champion's training sample) + current (recent inference log or a data URL) -> drift
per column -> Evidently's report -> if the dataset drifted: start the training deployment,
unless a training run for the model is already pending. Each check is also an MLflow run
(docs/tracking.md). Run it once with ``mlops drift``.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from prefect import flow, get_run_logger
from prefect.states import Completed, State

from flows import _runtime
from mlops.core.settings import DEFAULT_SPEC
from mlops.core.spec import PipelineSpec
from mlops.drift.compute import DriftResult
from mlops.drift.report import drift_markdown
from mlops.tracking.recorder import Recorder
from tasks.drift import (
    find_champion,
    judge_drift,
    load_current,
    load_reference,
    publish_drift,
    read_drift_spec,
    write_drift_report,
)
from tasks.notify import DRIFT_RETRAINING, announce_model_event
from tasks.retraining import (
    find_active_training,
    find_drift_cooldown,
    flow_name_of,
    start_training,
)
from tasks.tracking import track_drift, track_outcome, tracked_run

_runtime.install()  # heartbeat join and exit collection (see flows/_runtime.py)


@flow(name="drift-check", log_prints=False)
def drift_check(
    spec_path: str = DEFAULT_SPEC,
    data_url: str | None = None,
    window_hours: int | None = None,
    training_deployment: str = "training/training-manual",
    retrain: bool = True,
) -> dict[str, Any] | State:
    """Compare recent data with the champion's training sample; retrain when it drifted.

    Args:
        spec_path: The model's pipeline spec (YAML); its `drift` section holds the thresholds.
        data_url: Judge the data at this URL instead of the endpoint's inference log.
        window_hours: Hours of inference log to judge (default: the spec's drift.window_hours).
        training_deployment: The deployment to start, '<flow name>/<deployment name>'.
        retrain: Start training when the dataset drifted; False only reports.
    """
    flow_name_of(training_deployment)
    spec = read_drift_spec(spec_path)
    with tracked_run(spec, "drift") as recorder:
        outcome = _check(spec, spec_path, data_url, window_hours, training_deployment, retrain,
                         recorder)
        track_outcome(recorder, outcome if isinstance(outcome, dict) else outcome.data)
        return outcome


def _check(
    spec: PipelineSpec, spec_path: str, data_url: str | None, window_hours: int | None,
    training_deployment: str, retrain: bool, recorder: Recorder | None,
) -> dict[str, Any] | State:
    champion = find_champion(spec)
    if champion is None:
        return _skip(spec, f"model '{spec.model_name}' has no champion yet: nothing to compare")
    reference = load_reference(champion, spec)
    current = load_current(spec, data_url, window_hours)
    if current.rows < spec.drift.min_current_rows:
        return _skip(spec, f"only {current.rows} rows in {current.source}; the drift check "
                           f"needs at least {spec.drift.min_current_rows} (drift.min_current_rows)")
    result = judge_drift(reference, current, spec)
    context = {"champion_version": champion.version, "current": current.source}
    report = write_drift_report(reference, current, result, spec, context)
    track_drift(recorder, result, champion.version, current.source, report.url)
    outcome, training_run = _retrain_gate(
        spec, spec_path, result, report.url, training_deployment, retrain
    )
    get_run_logger().info("%s: %s; %s", spec.name, result.summary, outcome)
    markdown = drift_markdown(
        result, title=f"{spec.name}: drift check of champion v{champion.version}",
        sources=f"Reference: {reference.num_rows:,} rows. Current: {current.source}, "
                f"{current.rows:,} rows.",
        report_url=report.url, report=report.sample, outcome=outcome,
    )
    publish_drift(spec, result, markdown, report.url)
    return {
        "outcome": "drift" if result.dataset_drift else "no-drift",
        "summary": result.summary, "drifted_columns": result.drifted_columns,
        "report_url": report.url, "training_run": training_run, "detail": outcome,
    }


def _retrain_gate(
    spec: PipelineSpec, spec_path: str, result: DriftResult, report_url: str,
    training_deployment: str, retrain: bool,
) -> tuple[str, str | None]:
    """Start training on dataset drift unless asked not to, a run for the model is pending, or
    the model's drift cooldown holds (a drift-triggered run within drift.cooldown_hours).

    Returns:
        What happened, in words, and the id of the training run started (if one was).
    """
    if not result.dataset_drift:
        return "no dataset drift: nothing to do", None
    if not retrain:
        return "dataset drift; retraining not requested (retrain=False)", None
    active = find_active_training(spec, training_deployment)
    if active:
        return (f"dataset drift; retraining not started: training run {active[0].name} "
                f"({active[0].state}) for {spec.model_name} is already pending"), None
    recent = find_drift_cooldown(spec, training_deployment)
    if recent:
        until = recent.expected_start + timedelta(hours=spec.drift.cooldown_hours)
        return (f"dataset drift; retraining not started: cooldown until {until:%Y-%m-%d %H:%M} "
                f"UTC (drift.cooldown_hours={spec.drift.cooldown_hours:g} after the "
                f"drift-triggered run {recent.name}, {recent.state})"), None
    run_id = start_training(spec_path, f"drift: {result.summary}", report_url,
                            training_deployment)
    announce_model_event(DRIFT_RETRAINING, spec.model_name, {
        "summary": result.summary, "training_run": run_id, "report_url": report_url,
        "training_deployment": training_deployment})
    return f"dataset drift; started {training_deployment} (flow run {run_id})", run_id


def _skip(spec: PipelineSpec, why: str) -> State:
    """End the run without a verdict; its state message and an artifact say why."""
    get_run_logger().warning("Drift check of %s skipped: %s", spec.name, why)
    publish_drift(spec, None, f"### {spec.name}: drift check skipped\n\n{why}.", None)
    return Completed(message=f"skipped: {why}", data={"outcome": "skipped", "detail": why})
