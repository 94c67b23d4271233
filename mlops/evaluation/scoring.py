"""Scoring a model on a holdout: its predictions and point metrics (from `sklearn.metrics`)."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from mlops.core.spec import PipelineSpec
from mlops.evaluation.decision import Predictions, TrustedScores
from mlops.model.features import feature_frame, target_series

Task = Literal["classification", "regression"]


def score_model(model: Any, df: pd.DataFrame, spec: PipelineSpec) -> Predictions:
    """Predict the holdout with a fitted pipeline and keep what the metrics need."""
    X = feature_frame(df, spec)
    y_true = target_series(df, spec).to_numpy()
    y_pred = np.asarray(model.predict(X))
    if spec.task == "regression":
        return Predictions(y_true=y_true, y_pred=y_pred.astype("float64"))
    classes = np.asarray(model.classes_)
    y_score = None
    if hasattr(model, "predict_proba"):
        proba = np.asarray(model.predict_proba(X), dtype="float64")
        y_score = proba[:, 1] if len(classes) == 2 else proba
    return Predictions(y_true=y_true, y_pred=y_pred, y_score=y_score, classes=classes)


def score_trusted(
    candidate: Any, champion: Any, holdout: pd.DataFrame | None, spec: PipelineSpec,
    version: int,
) -> TrustedScores:
    """Both models on the champion's trusted holdout, through the same metric code.

    Args:
        candidate: The candidate's fitted pipeline.
        champion: The champion's fitted pipeline.
        holdout: The champion's trusted holdout (None: its version has none).
        version: The champion's version.

    Returns:
        The scores, or a `TrustedScores` whose `missing` says why the holdout cannot be used.
    """
    if holdout is None:
        return TrustedScores(version, missing="its version has no stored holdout (registered "
                                              "before versions kept one)")
    needed = [*(c.name for c in spec.feature_columns), spec.target]
    absent = [name for name in needed if name not in holdout.columns]
    if absent:
        return TrustedScores(version, len(holdout),
                             missing=f"its {len(holdout)} rows lack the columns {absent}")
    return TrustedScores(
        version, len(holdout),
        compute_metrics(spec.task, score_model(candidate, holdout, spec)),
        compute_metrics(spec.task, score_model(champion, holdout, spec)),
    )


def _classification_metrics(p: Predictions) -> dict[str, float]:
    classes = p.classes if p.classes is not None else np.unique(p.y_true)
    binary = len(classes) == 2
    average = "binary" if binary else "macro"
    label_kw: dict[str, Any] = {"pos_label": classes[-1]} if binary else {"labels": classes}
    out = {
        "accuracy": skm.accuracy_score(p.y_true, p.y_pred),
        "balanced_accuracy": skm.balanced_accuracy_score(p.y_true, p.y_pred),
        "f1": skm.f1_score(p.y_true, p.y_pred, average=average, zero_division=0, **label_kw),
        "precision": skm.precision_score(
            p.y_true, p.y_pred, average=average, zero_division=0, **label_kw
        ),
        "recall": skm.recall_score(
            p.y_true, p.y_pred, average=average, zero_division=0, **label_kw
        ),
    }
    if p.y_score is None or len(np.unique(p.y_true)) < 2:
        return out  # ranking metrics need probabilities and both classes
    if binary:
        positive = p.y_true == classes[-1]
        out["roc_auc"] = skm.roc_auc_score(positive, p.y_score)
        out["average_precision"] = skm.average_precision_score(positive, p.y_score)
        out["brier"] = skm.brier_score_loss(positive, p.y_score)
    elif set(np.unique(p.y_true)) == set(classes):
        out["roc_auc"] = skm.roc_auc_score(
            p.y_true, p.y_score, multi_class="ovr", average="macro", labels=classes
        )
        onehot = p.y_true[:, None] == classes[None, :]
        out["average_precision"] = skm.average_precision_score(onehot, p.y_score, average="macro")
        out["brier"] = skm.brier_score_loss(p.y_true, p.y_score, labels=classes)
    out["log_loss"] = skm.log_loss(p.y_true, _proba_matrix(p), labels=classes)
    return out


def _regression_metrics(p: Predictions) -> dict[str, float]:
    return {
        "r2": skm.r2_score(p.y_true, p.y_pred),
        "rmse": skm.root_mean_squared_error(p.y_true, p.y_pred),
        "mae": skm.mean_absolute_error(p.y_true, p.y_pred),
    }


def compute_metrics(task: Task, preds: Predictions) -> dict[str, float]:
    """Every metric of `mlops.core.spec.evaluation.METRIC_DIRECTIONS` that applies to the task.

    Multiclass uses macro averages (one-vs-rest for roc_auc). A metric that is undefined on
    these predictions (probabilities missing, a single class in the holdout) is left out rather
    than reported as NaN.
    """
    computed = (
        _regression_metrics(preds) if task == "regression" else _classification_metrics(preds)
    )
    return {name: float(value) for name, value in computed.items()}

def _proba_matrix(p: Predictions) -> np.ndarray:
    if p.y_score is None:
        raise ValueError("these predictions have no probabilities")
    if p.y_score.ndim == 1:
        return np.column_stack([1.0 - p.y_score, p.y_score])
    return p.y_score


def _onehot(p: Predictions) -> np.ndarray:
    return p.y_true[:, None] == p.classes[None, :]
