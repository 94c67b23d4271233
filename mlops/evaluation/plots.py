"""The comparison plot of candidate and champion on the holdout (ROC and PR, or residuals)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from sklearn import metrics as skm

from mlops.evaluation.decision import Predictions
from mlops.evaluation.scoring import Task, _onehot, _regression_metrics

logger = logging.getLogger(__name__)


# The candidate is drawn above the champion: it is the one being judged.
_STYLES = {
    "candidate": {"color": "tab:blue", "zorder": 3},
    "champion": {"color": "tab:orange", "zorder": 2},
}


def _binary_view(p: Predictions) -> tuple[np.ndarray, np.ndarray, str]:
    """Labels and scores for the curves: the positive class, or micro-averaged for multiclass."""
    if p.y_score is None:
        raise ValueError("a classification plot needs predicted probabilities")
    onehot = _onehot(Predictions(p.y_true, p.y_pred, p.y_score, np.asarray(p.classes)))
    if len(p.classes) == 2:
        return onehot[:, 1], p.y_score, f"positive class = {p.classes[1]}"
    return onehot.ravel(), np.asarray(p.y_score).ravel(), "micro-average over classes"


def _plot_classification(fig: Any, models: dict[str, Predictions]) -> None:
    roc_ax, pr_ax = fig.subplots(1, 2)
    note = ""
    for name, p in models.items():
        positive, scores, note = _binary_view(p)
        fpr, tpr, _ = skm.roc_curve(positive, scores)
        auc = skm.roc_auc_score(positive, scores)
        roc_ax.plot(fpr, tpr, label=f"{name} (ROC AUC {auc:.3f})", **_STYLES[name])
        precision, recall, _ = skm.precision_recall_curve(positive, scores)
        ap = skm.average_precision_score(positive, scores)
        pr_ax.step(recall, precision, where="post", label=f"{name} (AP {ap:.3f})",
                   **_STYLES[name])
    roc_ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
    roc_ax.set(title=f"ROC curve ({note})", xlabel="False positive rate",
               ylabel="True positive rate", xlim=(0, 1), ylim=(0, 1.02))
    pr_ax.set(title=f"Precision-recall curve ({note})", xlabel="Recall", ylabel="Precision",
              xlim=(0, 1), ylim=(0, 1.02))
    roc_ax.legend(loc="lower right")
    pr_ax.legend(loc="lower left")


def _plot_regression(fig: Any, models: dict[str, Predictions]) -> None:
    fit_ax, res_ax = fig.subplots(1, 2)
    for name, p in models.items():
        scores = _regression_metrics(p)
        label = f"{name} (R² {scores['r2']:.3f}, RMSE {scores['rmse']:.3g})"
        fit_ax.scatter(p.y_true, p.y_pred, s=10, alpha=0.5, label=label, **_STYLES[name])
        res_ax.scatter(p.y_pred, p.y_true - p.y_pred, s=10, alpha=0.5, label=label,
                       **_STYLES[name])
    values = np.concatenate([np.r_[p.y_true, p.y_pred] for p in models.values()])
    low, high = float(values.min()), float(values.max())
    fit_ax.plot([low, high], [low, high], linestyle="--", color="grey", label="perfect")
    res_ax.axhline(0.0, linestyle="--", color="grey")
    fit_ax.set(title="Predicted vs actual (holdout)", xlabel="Actual", ylabel="Predicted")
    res_ax.set(title="Residuals (holdout)", xlabel="Predicted", ylabel="Actual − predicted")
    fit_ax.legend(loc="upper left")
    res_ax.legend(loc="upper right")


def plot_comparison(
    task: Task, candidate: Predictions, champion: Predictions | None, path: str | Path
) -> Path:
    """Draw candidate and champion on the same axes as a PNG, for a person judging the release.

    Classification: ROC and precision-recall curves. Regression: predicted against actual and
    the residuals. Uses a bare `Figure` (no pyplot), so nothing global changes in the process.

    Returns:
        The path written.
    """
    from matplotlib.figure import Figure  # noqa: PLC0415 - only plotting pays for matplotlib

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    models = {"candidate": candidate}
    if champion is not None:
        models["champion"] = champion
    fig = Figure(figsize=(12, 5), layout="constrained")
    if task == "classification":
        _plot_classification(fig, models)
    else:
        _plot_regression(fig, models)
    title = "Candidate vs champion" if champion is not None else "Candidate (no champion yet)"
    fig.suptitle(f"{title} on the holdout")
    fig.savefig(path, format="png", dpi=100)
    logger.info("wrote comparison plot %s", path)
    return path
