"""The promotion gate: label drift before training; after it, candidate vs champion on the new
holdout and on the champion's trusted holdout (docs/promotion-gate.md)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from mlops.core.errors import LabelDriftError, ModelQualityError
from mlops.core.lineage import DataRef, code_version
from mlops.core.settings import get_settings
from mlops.core.spec import PipelineSpec
from mlops.data.frames import FrameRef, load_frame
from mlops.evaluation.decision import BootstrapResult, Decision
from mlops.model.results import Evaluation, Split, TrainedModel
from mlops.registry.backend import registry_for
from mlops.release.status import endpoint_view
from tasks._release import record_release

if TYPE_CHECKING:
    from mlops.drift.compute import ColumnDrift


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


def _champion(spec: PipelineSpec) -> tuple[int, Any, Any] | None:
    """The champion's version, fitted pipeline and trusted holdout; None without a champion."""
    registry = registry_for(spec, get_settings())
    version = registry.alias(spec.model_name)
    if version is None:
        return None
    model = registry.load(spec.model_name, version).model
    return version, model, registry.holdout(spec.model_name, version)


def _score_champion(spec: PipelineSpec, version: int, model: Any, holdout: Any) -> Any:
    from mlops.evaluation.scoring import (  # noqa: PLC0415 - scikit-learn; a cached run never needs it
        score_model,
    )

    try:
        return score_model(model, holdout, spec)
    except (KeyError, ValueError) as exc:
        raise ModelQualityError(
            f"champion {spec.model_name} v{version} cannot score the new holdout rows "
            f"({exc}); the data no longer fits the serving model: review the spec change"
        ) from exc


def _bootstrap(spec: PipelineSpec, candidate: Any, champion: Any) -> BootstrapResult:
    from mlops.evaluation.bootstrap import paired_bootstrap  # noqa: PLC0415 - scikit-learn

    b = spec.evaluation.bootstrap
    return paired_bootstrap(
        spec.evaluation.primary_metric, spec.task, candidate, champion,
        samples=b.samples, confidence=b.confidence, seed=spec.split.seed,
        direction=spec.evaluation.direction, max_rows=b.max_rows,
    )


@task
def evaluate_vs_champion(
    trained: TrainedModel, split: Split, data: DataRef, spec: PipelineSpec, run_dir: str
) -> Evaluation:
    """Score both models on the new holdout and on the champion's trusted holdout, and decide.

    Raises:
        ModelQualityError: the candidate is below the spec's minimum (every failed check is
            named; nothing was registered), or the champion cannot score the new rows.
    """
    logger = get_run_logger()
    unchanged = _same_as_champion(spec, data)
    if unchanged is not None:
        logger.info("Nothing to evaluate: %s", unchanged.decision.reasons[0])
        publish_evaluation(unchanged, spec)
        return unchanged
    from mlops.evaluation.gate import decide, decision_markdown  # noqa: PLC0415 - scikit-learn
    from mlops.evaluation.plots import plot_comparison  # noqa: PLC0415 - scikit-learn
    from mlops.evaluation.scoring import (  # noqa: PLC0415 - scikit-learn; a cached run never needs it
        compute_metrics,
        score_model,
        score_trusted,
    )

    holdout = load_frame(split.test, [*(c.name for c in spec.feature_columns), spec.target])
    candidate = score_model(trained.pipeline, holdout, spec)
    candidate_metrics = compute_metrics(spec.task, candidate)
    champ = _champion(spec)
    version, champion, champion_metrics, boot, trusted = None, None, None, None, None
    if champ is not None:
        version, model, trusted_rows = champ
        champion = _score_champion(spec, version, model, holdout)
        champion_metrics = compute_metrics(spec.task, champion)
        boot = _bootstrap(spec, candidate, champion)
        trusted = score_trusted(trained.pipeline, model, trusted_rows, spec, version)
    decision = decide(spec, candidate_metrics, champion_metrics, boot, trusted)
    plot = plot_comparison(spec.task, candidate, champion, Path(run_dir) / "evaluation.png")
    evaluation = Evaluation(decision, candidate_metrics, version, champion_metrics, boot,
                            str(plot), decision_markdown(decision, spec), trusted)
    publish_evaluation(evaluation, spec)
    logger.info("Candidate %s=%.4f vs champion %s: %s", spec.evaluation.primary_metric,
                candidate_metrics.get(spec.evaluation.primary_metric, float("nan")),
                f"v{version}" if version else "(none)",
                "PROMOTE" if decision.promote else "RETAIN CHAMPION")
    if decision.failed_floors:
        who = "first model" if version is None else f"candidate (champion v{version} stays)"
        raise ModelQualityError(f"{who} of '{spec.model_name}' is not good enough to serve: "
                                + "; ".join(decision.reasons))
    return evaluation


def _versus(evaluation: Evaluation, primary: str) -> str:
    """``roc_auc 0.8123 vs 0.8301, ...``: the candidate's holdout metrics against the
    champion's, the primary metric first."""
    champion = evaluation.champion_metrics or {}
    names = sorted(evaluation.candidate_metrics, key=lambda name: (name != primary, name))
    return ", ".join(
        f"{name} {evaluation.candidate_metrics[name]:.4f} vs "
        + (f"{champion[name]:.4f}" if name in champion else "-") for name in names
    )


@task
def record_retained(evaluation: Evaluation, spec: PipelineSpec, reason: str | None) -> None:
    """The gate kept the champion (nothing registered): a `retained` entry in the release
    history with the gate's reasons and the candidate's metrics against the champion's."""
    champion = evaluation.champion_version
    traffic = {k: int(v) for k, v in
               endpoint_view(spec, get_settings()).get("traffic", {}).items()}
    record_release(
        spec, "retained", None, champion_before=champion, champion_after=champion,
        traffic_before=traffic, traffic_after=traffic,
        reason="; ".join(evaluation.decision.reasons) or "the candidate is not better",
        detail=(f"candidate vs champion: {_versus(evaluation, spec.evaluation.primary_metric)}"
                f"; the run was started for: {reason or 'not given'}"),
    )


@task
def check_label_drift(
    clean: FrameRef, data: DataRef, spec: PipelineSpec, expect_shift: bool = False
) -> ColumnDrift | None:
    """The new data's target against the champion's training sample, before any training.

    Returns None when there is nothing to compare: no champion, the champion's own data, or a
    reference sample without the target.

    Raises:
        LabelDriftError: the target drifted and `expect_shift` does not say it was expected.
    """
    logger = get_run_logger()
    registry = registry_for(spec, get_settings())
    version = registry.alias(spec.model_name)
    if version is None:
        return None
    if registry.get(spec.model_name, version).manifest.get("data_fingerprint") == data.fingerprint:
        logger.info("Label drift not checked: champion v%s was trained on this data", version)
        return None
    from mlops.drift.data import read_reference  # noqa: PLC0415 - Arrow readers
    from mlops.evaluation.label_drift import (  # noqa: PLC0415 - Evidently, ~4 s
        describe,
        label_drift,
    )

    reference = read_reference(registry.bundle_url(spec.model_name, version), [spec.target])
    if spec.target not in reference.column_names:
        logger.warning("Label drift not checked: champion v%s's reference sample has no "
                       "target column '%s'", version, spec.target)
        return None
    current = pa.Table.from_pandas(load_frame(clean, [spec.target]), preserve_index=False)
    verdict = label_drift(reference, current, spec)
    seen = (f"target '{spec.target}' of the new data ({current.num_rows} rows) against champion "
            f"v{version}'s training sample ({reference.num_rows} rows): {describe(verdict)}")
    if verdict.drifted and not expect_shift:
        raise LabelDriftError(
            f"label drift, nothing trained: {seen}. If the shift is expected, run again with "
            "expect_label_shift=true"
        )
    log = logger.warning if verdict.drifted else logger.info
    log("Label drift %s: %s", "expected" if verdict.drifted else "none", seen)
    return verdict


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
