"""Tracking stages: every training and drift run is an MLflow run (docs/tracking.md).

The recorder process makes the MLflow calls; these only queue them, so a store that is down or
slow costs a warning in the run's log, never the run nor what it ships.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run

from mlops.core.lineage import DataRef, code_version
from mlops.core.settings import Settings, get_settings
from mlops.core.spec import PipelineSpec
from mlops.drift.compute import DriftResult
from mlops.drift.report import RESULT_FILE
from mlops.model.results import Evaluation
from mlops.tracking.process import process_recorder
from mlops.tracking.recorder import Recorder
from mlops.tracking.records import (
    data_tags,
    decision_tags,
    drift_metrics,
    drift_tags,
    evaluation_metrics,
    failure_tags,
    metrics_table,
    outcome_tags,
    run_tags,
    training_params,
    write_json,
)


def start_recorder(spec: PipelineSpec, settings: Settings) -> Recorder:
    """A recorder whose process starts now and opens the spec's store meanwhile."""
    return process_recorder(spec.model_dump(mode="json"), settings.state_dir,
                            spec.tracking.timeout_s)[0]


def warn_problems(recorder: Recorder | None) -> None:
    """Log the recorder's new warnings in the run, where people look."""
    if recorder is not None:
        for problem in recorder.new_problems():
            get_run_logger().warning("%s", problem)


@contextmanager
def recording(spec: PipelineSpec) -> Iterator[Recorder | None]:
    """A recorder for this flow run, with no MLflow run of its own (a rollback only moves the
    champion's mirror); None when the spec's `tracking.enabled` is false."""
    if not spec.tracking.enabled:
        yield None
        return
    recorder = start_recorder(spec, get_settings())
    try:
        yield recorder
    finally:
        for problem in recorder.close():
            get_run_logger().warning("%s", problem)
        if recorder.handed_to:
            get_run_logger().info("This run's remaining MLflow records are written by %s",
                                  recorder.handed_to)


@contextmanager
def tracked_run(spec: PipelineSpec, kind: str) -> Iterator[Recorder | None]:
    """An MLflow run for this flow run, in the experiment named after the model (drift checks:
    ``<model>-drift``); None when the spec's `tracking.enabled` is false.

    A failure inside ends the run FAILED with the error as a tag, and is raised unchanged.
    """
    with recording(spec) as recorder:
        if recorder is None:
            yield None
            return
        run_id = str(flow_run.id) if flow_run.id else None
        tags = run_tags(spec, kind, run_id, flow_run.ui_url if run_id else None, code_version())
        experiment = spec.model_name if kind == "training" else f"{spec.model_name}-{kind}"
        recorder.start(experiment, flow_run.name or kind, tags)
        if kind == "training":
            recorder.log("logging the spec's params", params=training_params(spec))
        try:
            yield recorder
        except Exception as exc:
            recorder.end("recording the failure", failure_tags(exc), "FAILED")
            raise


@task(cache_policy=NO_CACHE)
def track_evaluation(
    recorder: Recorder | None, evaluation: Evaluation, data: DataRef, spec: PipelineSpec,
    run_dir: str,
) -> None:
    """Queue the holdout metrics, the decision and the lineage; the metrics table, the spec and
    the pictures as artifacts."""
    if recorder is None:
        return
    recorder.log("recording the evaluation", metrics=evaluation_metrics(evaluation),
                 tags={**data_tags(data.url, data.fingerprint), **decision_tags(evaluation)})
    folder = Path(run_dir) / "tracking"
    files = [
        ("evaluation", write_json(folder / "metrics.json", metrics_table(evaluation))),
        ("evaluation", _write(folder / "decision.md", evaluation.markdown)),
        ("spec", write_json(folder / "spec.json", spec.model_dump(mode="json"))),
    ]
    if evaluation.plot_path:
        files.append(("evaluation", evaluation.plot_path))
    recorder.log_files("recording the evaluation's files", files)
    warn_problems(recorder)


def _write(path: Path, text: str) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


@task(cache_policy=NO_CACHE)
def track_outcome(recorder: Recorder | None, result: dict) -> None:
    """Queue how the run ended, and end it."""
    if recorder is None:
        return
    recorder.end("recording the outcome", outcome_tags(result), "FINISHED")
    warn_problems(recorder)


@task(cache_policy=NO_CACHE)
def track_drift(
    recorder: Recorder | None, result: DriftResult, champion_version: int, source: str,
    report_url: str,
) -> None:
    """Queue each column's drift score and the verdict; Evidently's report as an artifact when
    it is a local file (a report in Blob Storage is linked by its URL tag)."""
    if recorder is None:
        return
    recorder.log("recording the drift verdict", metrics=drift_metrics(result),
                 tags={**drift_tags(result, champion_version, source),
                       "mlops.report_url": report_url})
    local = Path(report_url)
    if local.is_absolute() and local.exists():
        recorder.log_files("recording the drift report",
                           [("drift", str(local)), ("drift", str(local.parent / RESULT_FILE))])
    warn_problems(recorder)
