"""Evaluation stage: candidate vs champion on the same holdout rows, and the promotion gate."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from mlops.backends import registry_for
from mlops.decision import BootstrapResult, Decision
from mlops.errors import ModelQualityError
from mlops.frames import load_frame
from mlops.lineage import DataRef, code_version
from mlops.settings import get_settings
from mlops.spec import PipelineSpec
from tasks.features import Split
from tasks.training import TrainedModel


@dataclass(frozen=True)
class Evaluation:
    decision: Decision
    candidate_metrics: dict[str, float]
    champion_version: int | None
    champion_metrics: dict[str, float] | None
    bootstrap: BootstrapResult | None
    plot_path: str | None
    markdown: str


def _same_as_champion(spec: PipelineSpec, data: DataRef) -> Evaluation | None:
    """The champion was trained on the same data, spec and code: training is deterministic, so
    the candidate is the champion and there is nothing to compare (the usual unchanged re-run).
    """
    registry = registry_for(spec, get_settings())
    version = registry.alias(spec.model_name)
    if version is None:
        return None
    manifest = registry.get(spec.model_name, version).manifest
    lineage = (manifest.get("data_fingerprint"), manifest.get("spec_hash"),
               manifest.get("code_version"))
    if lineage != (data.fingerprint, spec.spec_hash(), code_version()):
        return None
    reason = (
        f"the candidate is champion v{version} itself: same data fingerprint, spec hash and code "
        "version, and training is deterministic"
    )
    metrics = manifest.get("metrics", {})
    markdown = f"### {spec.name}: champion v{version} retained\n\n{reason}."
    return Evaluation(
        Decision(promote=False, reasons=[reason]), metrics, version, metrics, None, None, markdown
    )


def _champion_predictions(spec: PipelineSpec, holdout: Any) -> tuple[int | None, Any]:
    from mlops.evaluation import score_model  # noqa: PLC0415 - scikit-learn; a cached run never needs it

    registry = registry_for(spec, get_settings())
    version = registry.alias(spec.model_name)
    if version is None:
        return None, None
    champion = registry.load(spec.model_name, version).model
    try:
        return version, score_model(champion, holdout, spec)
    except (KeyError, ValueError) as exc:
        raise ModelQualityError(
            f"champion {spec.model_name} v{version} cannot score the new holdout rows "
            f"({exc}); the data no longer fits the serving model: review the spec change"
        ) from exc


@task
def evaluate_vs_champion(
    trained: TrainedModel, split: Split, data: DataRef, spec: PipelineSpec, run_dir: str
) -> Evaluation:
    """Score both models on the holdout, bootstrap the difference and decide.

    A first model must reach the spec's minimum; a later one must beat the champion by the
    margin without any guard metric regressing past its tolerance.
    """
    logger = get_run_logger()
    unchanged = _same_as_champion(spec, data)
    if unchanged is not None:
        logger.info("Nothing to evaluate: %s", unchanged.decision.reasons[0])
        publish_evaluation(unchanged, spec)
        return unchanged
    from mlops.evaluation import (  # noqa: PLC0415 - scikit-learn; a cached run never needs it
        compute_metrics,
        decide,
        decision_markdown,
        paired_bootstrap,
        plot_comparison,
        score_model,
    )

    holdout = load_frame(split.test, [*(c.name for c in spec.feature_columns), spec.target])
    candidate = score_model(trained.pipeline, holdout, spec)
    candidate_metrics = compute_metrics(spec.task, candidate)
    champion_version, champion = _champion_predictions(spec, holdout)
    champion_metrics = compute_metrics(spec.task, champion) if champion else None
    boot = None
    if champion is not None:
        b = spec.evaluation.bootstrap
        boot = paired_bootstrap(
            spec.evaluation.primary_metric, spec.task, candidate, champion,
            samples=b.samples, confidence=b.confidence, seed=spec.split.seed,
            direction=spec.evaluation.direction, max_rows=b.max_rows,
        )
    decision = decide(spec, candidate_metrics, champion_metrics, boot)
    plot = plot_comparison(spec.task, candidate, champion, Path(run_dir) / "evaluation.png")
    markdown = decision_markdown(decision, spec)
    logger.info(
        "Candidate %s=%.4f vs champion %s: %s",
        spec.evaluation.primary_metric, candidate_metrics[spec.evaluation.primary_metric],
        f"v{champion_version}" if champion_version else "(none)",
        "PROMOTE" if decision.promote else "RETAIN CHAMPION",
    )
    evaluation = Evaluation(
        decision, candidate_metrics, champion_version, champion_metrics, boot, str(plot), markdown
    )
    publish_evaluation(evaluation, spec)
    if champion_version is None and not decision.promote:
        raise ModelQualityError(
            f"first model of '{spec.model_name}' is not good enough to serve: "
            + "; ".join(decision.reasons)
        )
    return evaluation


def publish_evaluation(evaluation: Evaluation, spec: PipelineSpec) -> None:
    """The decision, a metrics table and the comparison picture, as Prefect artifacts."""
    markdown = evaluation.markdown
    if evaluation.plot_path:
        image = base64.b64encode(Path(evaluation.plot_path).read_bytes()).decode()
        markdown += (
            f"\n\n![candidate vs champion](data:image/png;base64,{image})"
            f"\n\nPicture saved at `{evaluation.plot_path}`."
        )
    create_markdown_artifact(
        key=f"{spec.name}-evaluation",
        markdown=markdown,
        description=f"Candidate vs champion for {spec.name}",
    )
    create_table_artifact(
        key=f"{spec.name}-metrics",
        table=[
            {
                "metric": row.metric, "candidate": row.candidate, "champion": row.champion,
                "delta": row.delta, "limit": row.limit, "passed": row.passed,
            }
            for row in evaluation.decision.rows
        ],
        description="Holdout metrics, candidate vs champion",
    )
