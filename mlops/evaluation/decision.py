"""The promotion decision's data: predictions, bootstrap interval, checks and verdict.

Kept apart from `mlops.evaluation` (which needs scikit-learn) so that reading or building a
decision, as a cached re-run does, costs no heavy imports.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Predictions:
    """What a model said about the holdout, enough to compute every metric again.

    Attributes:
        y_true: The holdout's target values.
        y_pred: Predicted labels (classification) or values (regression).
        y_score: Positive-class probability (binary), class probabilities in `classes` order
            (multiclass), or None (regression, or a classifier without `predict_proba`).
        classes: The model's classes, None for regression.
    """

    y_true: np.ndarray
    y_pred: np.ndarray
    y_score: np.ndarray | None = None
    classes: np.ndarray | None = None


@dataclass(frozen=True)
class BootstrapResult:
    """Improvement of the candidate over the champion, with its confidence interval.

    Positive means the candidate is better, also for metrics that are minimised.
    """

    diff: float
    low: float
    high: float
    metric: str = ""
    confidence: float = 0.95


@dataclass(frozen=True)
class MetricRow:
    """One promotion check: the values compared, the improvement and the limit it had to meet.

    `delta` is the improvement in the metric's good direction (negative: the candidate is
    worse); `limit` is the smallest acceptable `delta`, or for the minimum the minimum value.
    `rule` names the check: ``margin``, ``guard``, ``bootstrap``, ``minimum`` or
    ``trusted_holdout``; ``minimum`` is a floor (`FLOOR_RULES`).
    """

    metric: str
    candidate: float | None
    champion: float | None
    delta: float | None
    limit: float | None
    passed: bool
    rule: str = ""


# Checks whose failure means the candidate must not serve at all, not just that it is no better
# than the champion: the run fails on them (ModelQualityError) instead of keeping the champion.
FLOOR_RULES = frozenset({"minimum"})


@dataclass(frozen=True)
class TrustedScores:
    """Candidate and champion scored on the champion's trusted holdout: the rows the champion
    was judged on when it was registered, kept with its version.

    Attributes:
        version: The champion's version (whose holdout this is).
        rows: Rows scored.
        candidate: The candidate's metrics on those rows.
        champion: The champion's metrics on the same rows, through the same code.
        missing: Why the holdout could not be used (an older version without one, columns the
            candidate needs and it lacks); then the check is skipped with this as a warning.
    """

    version: int
    rows: int = 0
    candidate: dict[str, float] = field(default_factory=dict)
    champion: dict[str, float] = field(default_factory=dict)
    missing: str | None = None


@dataclass
class Decision:
    """Whether the candidate replaces the champion, why, and every check behind it."""

    promote: bool
    reasons: list[str] = field(default_factory=list)
    rows: list[MetricRow] = field(default_factory=list)

    @property
    def failed_floors(self) -> list[MetricRow]:
        """The failed checks that forbid serving the candidate at all (`FLOOR_RULES`)."""
        return [row for row in self.rows if not row.passed and row.rule in FLOOR_RULES]
