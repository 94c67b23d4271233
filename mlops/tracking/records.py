"""What a run records, as plain dicts: params, metrics and tags from the spec, the evaluation and
the drift verdict. No MLflow here; the recorder sends these in one batch each."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops.core.spec import PipelineSpec

if TYPE_CHECKING:
    from mlops.drift.compute import DriftResult
    from mlops.model.results import Evaluation

# MLflow keeps tag values up to 8000 characters; reasons and errors are cut well below that.
TAG_LIMIT = 4000
PREFIX = "mlops."
# What MLflow refuses in a metric or param name, replaced by one underscore each run.
_NOT_IN_NAMES = re.compile(r"[^\w\-.:/]+")


def metric_name(*parts: str) -> str:
    """A dotted name MLflow takes: ``delta.bootstrap.roc_auc_CI_lower_bound``."""
    return ".".join(_NOT_IN_NAMES.sub("_", part).strip("_") for part in parts if part)


def _flatten(prefix: str, value: Any, out: dict[str, str]) -> dict[str, str]:
    if isinstance(value, dict) and value:
        for key, inner in value.items():
            _flatten(f"{prefix}.{key}", inner, out)
    else:
        out[prefix] = json.dumps(value) if isinstance(value, list | dict) else str(value)
    return out


def training_params(spec: PipelineSpec) -> dict[str, str]:
    """The model, its features settings and the split, as dotted params
    (``model.params.max_iter``, ``features.numeric.scaler``, ``split.test_size``)."""
    params: dict[str, str] = {}
    for section in ("model", "features", "split"):
        _flatten(section, getattr(spec, section).model_dump(mode="json"), params)
    return params


def run_tags(spec: PipelineSpec, kind: str, flow_run_id: str | None, flow_run_url: str | None,
             code: str) -> dict[str, str]:
    """What identifies the run: the spec, the code and the Prefect flow run behind it."""
    tags = {
        f"{PREFIX}kind": kind,
        f"{PREFIX}spec_name": spec.name,
        f"{PREFIX}spec_hash": spec.spec_hash(),
        f"{PREFIX}code_version": code,
        f"{PREFIX}prefect_flow_run_id": flow_run_id or "",
        f"{PREFIX}prefect_flow_run_url": flow_run_url or "",
    }
    return {k: v for k, v in tags.items() if v}


def data_tags(url: str, fingerprint: str) -> dict[str, str]:
    return {f"{PREFIX}data_url": url[:TAG_LIMIT], f"{PREFIX}data_fingerprint": fingerprint}


def evaluation_metrics(evaluation: Evaluation) -> dict[str, float]:
    """Candidate and champion on the new holdout, every check's delta (``delta.<rule>.<metric>``:
    positive is better), the bootstrap interval and both models on the trusted holdout."""
    metrics = {f"candidate.{k}": v for k, v in evaluation.candidate_metrics.items()}
    metrics.update({f"champion.{k}": v for k, v in (evaluation.champion_metrics or {}).items()})
    for row in evaluation.decision.rows:
        if row.delta is not None:
            metrics[metric_name("delta", row.rule or "check", row.metric)] = row.delta
    boot = evaluation.bootstrap
    if boot is not None:
        metrics.update({"bootstrap.diff": boot.diff, "bootstrap.low": boot.low,
                        "bootstrap.high": boot.high, "bootstrap.confidence": boot.confidence})
    trusted = evaluation.trusted
    if trusted is not None and trusted.missing is None:
        metrics.update({f"trusted.candidate.{k}": v for k, v in trusted.candidate.items()})
        metrics.update({f"trusted.champion.{k}": v for k, v in trusted.champion.items()})
    return {k: float(v) for k, v in metrics.items() if v is not None}


def decision_tags(evaluation: Evaluation) -> dict[str, str]:
    """The verdict and its reasons; the decision's text is also the run's description."""
    tags = {
        f"{PREFIX}decision": "promote" if evaluation.decision.promote else "retain",
        f"{PREFIX}reasons": "; ".join(evaluation.decision.reasons)[:TAG_LIMIT],
        "mlflow.note.content": evaluation.markdown[:TAG_LIMIT],
    }
    if evaluation.champion_version is not None:
        tags[f"{PREFIX}champion_version"] = str(evaluation.champion_version)
    return tags


def metrics_table(evaluation: Evaluation) -> list[dict[str, Any]]:
    """Every check of the gate, as the Prefect table artifact shows it."""
    return [
        {"metric": r.metric, "rule": r.rule, "candidate": r.candidate, "champion": r.champion,
         "delta": r.delta, "limit": r.limit, "passed": r.passed}
        for r in evaluation.decision.rows
    ]


def version_tags(name: str, version: int, url: str) -> dict[str, str]:
    """The registered version a run made: its name, number and bundle URL."""
    return {f"{PREFIX}model_name": name, f"{PREFIX}model_version": str(version),
            f"{PREFIX}model_url": url[:TAG_LIMIT]}


def outcome_tags(result: dict[str, Any]) -> dict[str, str]:
    """How the run ended (promoted, retained, rejected; drift, no-drift, skipped) and why."""
    tags = {f"{PREFIX}outcome": str(result.get("outcome", "unknown"))}
    why = result.get("reason") or result.get("detail")
    if why:
        tags[f"{PREFIX}outcome_reason"] = str(why)[:TAG_LIMIT]
    return tags


def failure_tags(exc: BaseException) -> dict[str, str]:
    return {f"{PREFIX}outcome": "failed",
            f"{PREFIX}error": f"{type(exc).__name__}: {exc}"[:TAG_LIMIT]}


def drift_metrics(result: DriftResult) -> dict[str, float]:
    """Each column's score (``drift.<column>``) and the share of drifted columns: drift over
    time is a chart of these in the MLflow UI."""
    metrics = {metric_name("drift", c.column): float(c.score) for c in result.columns}
    metrics.update({
        "drift.drifted_share": result.share,
        "drift.drifted_columns": float(len(result.drifted_columns)),
        "reference_rows": float(result.reference_rows),
        "current_rows": float(result.current_rows),
    })
    return metrics


def drift_tags(result: DriftResult, champion_version: int, source: str) -> dict[str, str]:
    tags = {f"{PREFIX}dataset_drift": str(result.dataset_drift).lower(),
            f"{PREFIX}drift_summary": result.summary[:TAG_LIMIT],
            f"{PREFIX}champion_version": str(champion_version),
            f"{PREFIX}current_source": source[:TAG_LIMIT]}
    tags.update({f"{PREFIX}drift_method.{c.column}": c.method for c in result.columns})
    return tags


def write_json(path: Path, value: Any) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2, default=str))
    return str(path)
