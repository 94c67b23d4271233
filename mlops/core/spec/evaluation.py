"""The spec's evaluation section: the metrics we compute, the primary one, guards, bootstrap."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from mlops.core.spec.columns import _Strict

# Metrics we can compute, with the direction in which they improve.
METRIC_DIRECTIONS: dict[str, Literal["maximize", "minimize"]] = {
    "roc_auc": "maximize",
    "average_precision": "maximize",
    "accuracy": "maximize",
    "balanced_accuracy": "maximize",
    "f1": "maximize",
    "precision": "maximize",
    "recall": "maximize",
    "log_loss": "minimize",
    "brier": "minimize",
    "r2": "maximize",
    "rmse": "minimize",
    "mae": "minimize",
}
CLASSIFICATION_METRICS = {
    "roc_auc", "average_precision", "accuracy", "balanced_accuracy", "f1", "precision",
    "recall", "log_loss", "brier",
}
REGRESSION_METRICS = {"r2", "rmse", "mae"}


class GuardMetric(_Strict):
    name: str
    tolerance: float = Field(0.0, ge=0.0, description="How much worse than the champion is ok.")


class BootstrapSpec(_Strict):
    samples: int = Field(500, ge=50, le=20_000)
    confidence: float = Field(0.95, gt=0.5, lt=1.0)
    require_lower_bound: bool = Field(
        False, description="The CI's lower bound of the improvement must clear the margin."
    )
    max_rows: int = Field(
        50_000, ge=100,
        description="Holdout rows the bootstrap resamples (a seeded subsample of larger ones);"
        " a smaller set gives a wider, so more cautious, interval.",
    )


class EvaluationSpec(_Strict):
    primary_metric: str
    direction: Literal["maximize", "minimize"] | None = None
    promotion_margin: float = Field(0.0, ge=0.0)
    minimum: float | None = Field(
        None, description="Primary metric every candidate must reach on the new holdout, the "
        "first model and every later one alike.",
    )
    guard_metrics: list[GuardMetric] = Field(default_factory=list)
    bootstrap: BootstrapSpec = Field(default_factory=BootstrapSpec)
    trusted_tolerance: float = Field(
        0.01, ge=0.0,
        description="How much worse than the champion (in the primary metric's units) the "
        "candidate may score on the champion's trusted holdout, the rows the champion was "
        "judged on when it was promoted.",
    )
    holdout_rows: int = Field(
        50_000, ge=100,
        description="Holdout rows stored with a version as its trusted holdout (a seeded "
        "sample of larger holdouts).",
    )
    label_drift_threshold: float | None = Field(
        None, gt=0.0,
        description="Threshold of the label-drift check instead of its method's default "
        "(distances: drift at or above it; p-value tests: drift below it).",
    )

    @model_validator(mode="after")
    def _known_metrics(self) -> EvaluationSpec:
        names = [self.primary_metric, *(g.name for g in self.guard_metrics)]
        unknown = [n for n in names if n not in METRIC_DIRECTIONS]
        if unknown:
            raise ValueError(f"unknown metrics {unknown}; known: {sorted(METRIC_DIRECTIONS)}")
        if self.direction is None:
            self.direction = METRIC_DIRECTIONS[self.primary_metric]
        return self
