"""The paired bootstrap of candidate against champion on the same holdout rows.

The bootstrap needs the metrics on hundreds of resamples, which would be seconds of
scikit-learn overhead per call, so it uses weighted re-implementations (a resample with
replacement is the holdout with integer row weights): one matrix of weights, every resample at
once. The tests check those against scikit-learn.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np

from mlops.core.spec.evaluation import METRIC_DIRECTIONS
from mlops.evaluation.decision import BootstrapResult, Predictions
from mlops.evaluation.scoring import Task, _onehot, _proba_matrix

# Resampled weight cells held in memory at once (rows x samples); bounds the bootstrap's memory.
_BOOTSTRAP_CELLS = 4_000_000

# Each takes predictions and a weights matrix W (samples x rows) and returns one value per row
# of W. With W all ones they equal scikit-learn's metrics.


def _wmean(W: np.ndarray, values: np.ndarray) -> np.ndarray:
    return (W @ values) / W.sum(axis=1)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.full_like(num, np.nan, dtype="float64"), where=den > 0)


def _tie_groups(scores: np.ndarray, descending: bool) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(-scores if descending else scores, kind="stable")
    ordered = scores[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    return order, starts


def _w_auc(W: np.ndarray, positive: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Mann-Whitney AUC with weights; ties count half, as in the trapezoidal ROC area."""
    order, starts = _tie_groups(scores, descending=False)
    pos = np.add.reduceat(W[:, order] * positive[order], starts, axis=1)
    neg = np.add.reduceat(W[:, order] * ~positive[order], starts, axis=1)
    below = np.cumsum(neg, axis=1) - neg
    return _ratio((pos * (below + 0.5 * neg)).sum(axis=1), pos.sum(axis=1) * neg.sum(axis=1))


def _w_average_precision(W: np.ndarray, positive: np.ndarray, scores: np.ndarray) -> np.ndarray:
    order, starts = _tie_groups(scores, descending=True)
    tp = np.cumsum(np.add.reduceat(W[:, order] * positive[order], starts, axis=1), axis=1)
    fp = np.cumsum(np.add.reduceat(W[:, order] * ~positive[order], starts, axis=1), axis=1)
    precision = np.nan_to_num(_ratio(tp, tp + fp))
    recall = _ratio(tp, tp[:, -1:])
    steps = np.diff(recall, axis=1, prepend=0.0)
    return (steps * precision).sum(axis=1)


def _per_class(
    W: np.ndarray, p: Predictions, fn: Callable[..., np.ndarray]
) -> np.ndarray:
    """Binary metric for the positive class, or the macro mean over classes (one-vs-rest)."""
    proba, onehot = _proba_matrix(p), _onehot(p)
    if len(p.classes) == 2:
        return fn(W, onehot[:, 1], proba[:, 1])
    return np.mean([fn(W, onehot[:, k], proba[:, k]) for k in range(len(p.classes))], axis=0)


def _w_counts(W: np.ndarray, p: Predictions, k: int) -> tuple[np.ndarray, ...]:
    actual, predicted = p.y_true == p.classes[k], p.y_pred == p.classes[k]
    return W @ (actual & predicted), W @ predicted, W @ actual


def _w_prf(W: np.ndarray, p: Predictions, which: str) -> np.ndarray:
    """Precision, recall or F1: of the positive class if binary, else the macro mean."""
    ks = [1] if len(p.classes) == 2 else range(len(p.classes))
    values = []
    for k in ks:
        tp, predicted, actual = _w_counts(W, p, k)
        value = {"precision": _ratio(tp, predicted), "recall": _ratio(tp, actual),
                 "f1": _ratio(2 * tp, predicted + actual)}[which]
        values.append(np.nan_to_num(value))  # zero_division=0, as in compute_metrics
    return np.mean(values, axis=0)


def _w_balanced_accuracy(W: np.ndarray, p: Predictions) -> np.ndarray:
    recalls = [_ratio(*_w_counts(W, p, k)[::2]) for k in range(len(p.classes))]
    return np.nanmean(recalls, axis=0)


def _w_log_loss(W: np.ndarray, p: Predictions) -> np.ndarray:
    proba = _proba_matrix(p)
    proba = proba / proba.sum(axis=1, keepdims=True)
    eps = np.finfo(proba.dtype).eps
    return _wmean(W, -np.log(np.clip(proba[_onehot(p)], eps, 1 - eps)))


def _w_brier(W: np.ndarray, p: Predictions) -> np.ndarray:
    squared = ((_proba_matrix(p) - _onehot(p)) ** 2).sum(axis=1)
    return _wmean(W, squared / 2 if len(p.classes) == 2 else squared)


def _w_r2(W: np.ndarray, p: Predictions) -> np.ndarray:
    total = W.sum(axis=1)
    mean = (W @ p.y_true) / total
    sst = W @ p.y_true**2 - total * mean**2
    return 1.0 - _ratio(W @ (p.y_true - p.y_pred) ** 2, sst)


_WEIGHTED: dict[str, Callable[[np.ndarray, Predictions], np.ndarray]] = {
    "roc_auc": lambda W, p: _per_class(W, p, _w_auc),
    "average_precision": lambda W, p: _per_class(W, p, _w_average_precision),
    "accuracy": lambda W, p: _wmean(W, (p.y_true == p.y_pred).astype("float64")),
    "balanced_accuracy": _w_balanced_accuracy,
    "f1": lambda W, p: _w_prf(W, p, "f1"),
    "precision": lambda W, p: _w_prf(W, p, "precision"),
    "recall": lambda W, p: _w_prf(W, p, "recall"),
    "log_loss": _w_log_loss,
    "brier": _w_brier,
    "r2": _w_r2,
    "rmse": lambda W, p: np.sqrt(_wmean(W, (p.y_true - p.y_pred) ** 2)),
    "mae": lambda W, p: _wmean(W, np.abs(p.y_true - p.y_pred)),
}


def weighted_metric(metric: str, preds: Predictions, weights: np.ndarray) -> np.ndarray:
    """One metric under each row of `weights` (samples x holdout rows).

    Raises:
        ValueError: the metric is unknown or needs probabilities the predictions lack.
    """
    if metric not in _WEIGHTED:
        raise ValueError(f"unknown metric '{metric}'; known: {sorted(_WEIGHTED)}")
    if preds.classes is not None:
        preds = Predictions(preds.y_true, preds.y_pred, preds.y_score, np.asarray(preds.classes))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(_WEIGHTED[metric](np.atleast_2d(weights), preds), dtype="float64")


def subsample(preds: Predictions, rows: np.ndarray) -> Predictions:
    """The same predictions restricted to `rows` (holdout row positions)."""
    score = None if preds.y_score is None else preds.y_score[rows]
    return Predictions(preds.y_true[rows], preds.y_pred[rows], score, preds.classes)


def paired_bootstrap(
    metric: str,
    task: Task,
    cand: Predictions,
    champ: Predictions,
    samples: int,
    confidence: float,
    seed: int,
    direction: Literal["maximize", "minimize"] | None = None,
    max_rows: int | None = None,
) -> BootstrapResult:
    """Confidence interval of the candidate's improvement over the champion on the holdout.

    Both models are scored on the same resampled rows, so the interval reflects the difference
    between them rather than the noise of the holdout. A resample with replacement is drawn as
    multinomial row counts, i.e. weights.

    Args:
        metric: A name from `METRIC_DIRECTIONS`.
        task: Only used to say what went wrong; the metric decides how to compute.
        cand: Candidate's predictions on the holdout.
        champ: Champion's predictions on the same rows.
        samples: Number of resamples.
        confidence: Central share of the resampled differences the interval covers.
        seed: Makes the resamples, and so the interval, repeatable.
        direction: Overrides `METRIC_DIRECTIONS[metric]` (the spec may set its own).
        max_rows: Resample a seeded subsample of this many rows when the holdout is larger.

    Raises:
        ValueError: the two prediction sets are not for the same rows.
    """
    if len(cand.y_true) != len(champ.y_true) or not np.array_equal(cand.y_true, champ.y_true):
        raise ValueError(f"{task} bootstrap: candidate and champion scored different rows")
    sign = 1.0 if (direction or METRIC_DIRECTIONS[metric]) == "maximize" else -1.0
    rng = np.random.default_rng(seed)
    if max_rows is not None and len(cand.y_true) > max_rows:
        # Resampling millions of rows hundreds of times costs minutes; a seeded subsample keeps
        # the interval honest (only wider) at a fixed cost.
        rows = np.sort(rng.choice(len(cand.y_true), size=max_rows, replace=False))
        cand, champ = subsample(cand, rows), subsample(champ, rows)
    n = len(cand.y_true)
    def improvement(W: np.ndarray) -> np.ndarray:
        return sign * (weighted_metric(metric, cand, W) - weighted_metric(metric, champ, W))

    diff = float(improvement(np.ones((1, n)))[0])
    chunk = max(1, _BOOTSTRAP_CELLS // max(n, 1))
    diffs = []
    for start in range(0, samples, chunk):
        counts = rng.multinomial(n, np.full(n, 1.0 / n), size=min(chunk, samples - start))
        diffs.append(improvement(counts.astype("float64")))
    resampled = np.concatenate(diffs)
    resampled = resampled[np.isfinite(resampled)]  # e.g. a resample holding a single class
    if resampled.size == 0:
        return BootstrapResult(diff, float("nan"), float("nan"), metric, confidence)
    tail = (1.0 - confidence) / 2 * 100
    low, high = np.percentile(resampled, [tail, 100 - tail])
    return BootstrapResult(diff, float(low), float(high), metric, confidence)
