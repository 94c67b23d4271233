"""Scoring a model on the holdout, comparing it with the champion, and deciding on promotion.

Point metrics come from `sklearn.metrics`. The paired bootstrap needs the same metrics on
hundreds of resamples, which would be seconds of scikit-learn overhead per call, so it uses
weighted re-implementations (a resample with replacement is the holdout with integer row
weights): one matrix of weights, every resample at once. The tests check those against
scikit-learn.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from mlops.decision import BootstrapResult, Decision, MetricRow, Predictions, TrustedScores
from mlops.model.features import feature_frame, target_series
from mlops.spec import METRIC_DIRECTIONS, PipelineSpec

logger = logging.getLogger(__name__)

Task = Literal["classification", "regression"]
# Resampled weight cells held in memory at once (rows x samples); bounds the bootstrap's memory.
_BOOTSTRAP_CELLS = 4_000_000


# --- scoring ----------------------------------------------------------------------------------


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
    """Every metric of `mlops.spec.METRIC_DIRECTIONS` that applies to the task.

    Multiclass uses macro averages (one-vs-rest for roc_auc). A metric that is undefined on
    these predictions (probabilities missing, a single class in the holdout) is left out rather
    than reported as NaN.
    """
    computed = (
        _regression_metrics(preds) if task == "regression" else _classification_metrics(preds)
    )
    return {name: float(value) for name, value in computed.items()}


# --- weighted metrics for the bootstrap -------------------------------------------------------
# Each takes predictions and a weights matrix W (samples x rows) and returns one value per row
# of W. With W all ones they equal scikit-learn's metrics.


def _proba_matrix(p: Predictions) -> np.ndarray:
    if p.y_score is None:
        raise ValueError("these predictions have no probabilities")
    if p.y_score.ndim == 1:
        return np.column_stack([1.0 - p.y_score, p.y_score])
    return p.y_score


def _onehot(p: Predictions) -> np.ndarray:
    return p.y_true[:, None] == p.classes[None, :]


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


# --- the promotion decision -------------------------------------------------------------------


def _improvement(
    metric: str, candidate: float, champion: float, direction: str | None = None
) -> float:
    sign = 1.0 if (direction or METRIC_DIRECTIONS[metric]) == "maximize" else -1.0
    return sign * (candidate - champion)


def _minimum_row(spec: PipelineSpec, candidate: dict[str, float], why: str
                 ) -> tuple[MetricRow, str]:
    """The spec's minimum, which every candidate must reach on the new holdout."""
    ev = spec.evaluation
    metric, value = ev.primary_metric, candidate.get(ev.primary_metric)
    if ev.minimum is None:
        row = MetricRow(metric, value, None, None, None, True, "minimum")
        return row, f"{why}; no minimum is set for {metric}"
    reached = value is not None and _improvement(metric, value, ev.minimum, ev.direction) >= 0
    row = MetricRow(metric, value, None, None, ev.minimum, reached, "minimum")
    comparison = "at least" if ev.direction == "maximize" else "at most"
    seen = "missing" if value is None else f"{value:.4f}"
    return row, f"{why}; {metric} is {seen}, it must be {comparison} {ev.minimum:.4f}"


def _trusted_row(spec: PipelineSpec, trusted: TrustedScores) -> tuple[MetricRow, str] | str:
    """Candidate vs champion on the champion's trusted holdout; a string when not checkable."""
    ev = spec.evaluation
    metric, tolerance = ev.primary_metric, ev.trusted_tolerance
    name = f"{metric} (trusted holdout of v{trusted.version})"
    skipped = f"warning: trusted holdout of champion v{trusted.version} not checked"
    if trusted.missing is not None:
        return f"{skipped}: {trusted.missing}"
    cand, champ = trusted.candidate.get(metric), trusted.champion.get(metric)
    if champ is None:
        return f"{skipped}: the champion has no {metric} on its {trusted.rows} rows"
    if cand is None:
        return (MetricRow(name, None, champ, None, -tolerance, False, "trusted_holdout"),
                f"trusted holdout of champion v{trusted.version}: the candidate has no {metric}")
    delta = _improvement(metric, cand, champ, ev.direction)
    passed = delta >= -tolerance
    state = "within" if passed else "beyond"
    sentence = (f"trusted holdout of champion v{trusted.version} ({trusted.rows} rows): {metric} "
                f"{cand:.4f} vs champion {champ:.4f}, change {delta:+.4f} is {state} the "
                f"tolerance of {tolerance:.4f} worse")
    return MetricRow(name, cand, champ, delta, -tolerance, passed, "trusted_holdout"), sentence


def _primary_row(spec: PipelineSpec, candidate: dict, champion: dict) -> tuple[MetricRow, str]:
    ev = spec.evaluation
    metric = ev.primary_metric
    cand, champ = candidate.get(metric), champion[metric]
    if cand is None:
        return (MetricRow(metric, None, champ, None, ev.promotion_margin, False, "margin"),
                f"the candidate has no {metric} (needed to compare with the champion)")
    delta = _improvement(metric, cand, champ, ev.direction)
    passed = delta > ev.promotion_margin
    verb = "improves on" if passed else "does not improve enough on"
    sentence = (f"{metric} {cand:.4f} {verb} the champion's {champ:.4f}: improvement {delta:+.4f}, "
                f"it must exceed the margin {ev.promotion_margin:.4f}")
    return MetricRow(metric, cand, champ, delta, ev.promotion_margin, passed, "margin"), sentence


def _guard_row(name: str, tolerance: float, candidate: dict, champion: dict
               ) -> tuple[MetricRow, str]:
    cand, champ = candidate.get(name), champion.get(name)
    if champ is None:
        return (MetricRow(name, cand, None, None, -tolerance, True, "guard"),
                f"guard {name}: the champion has no recorded value, not checked")
    if cand is None:
        return (MetricRow(name, None, champ, None, -tolerance, False, "guard"),
                f"guard {name}: the candidate has no value (champion {champ:.4f})")
    delta = _improvement(name, cand, champ)
    passed = delta >= -tolerance
    state = "within" if passed else "worse than"
    sentence = (f"guard {name} {cand:.4f} vs champion {champ:.4f}: change {delta:+.4f} is {state} "
                f"the tolerance of {tolerance:.4f} worse")
    return MetricRow(name, cand, champ, delta, -tolerance, passed, "guard"), sentence


def _bootstrap_row(spec: PipelineSpec, bootstrap: BootstrapResult | None
                   ) -> tuple[MetricRow, str] | None:
    ev = spec.evaluation
    required = ev.bootstrap.require_lower_bound
    name = f"{ev.primary_metric} (CI lower bound)"
    if bootstrap is None:
        if not required:
            return None
        return (MetricRow(name, None, None, None, ev.promotion_margin, False, "bootstrap"),
                "the bootstrap lower bound is required but no bootstrap was computed")
    passed = bootstrap.low > ev.promotion_margin  # NaN never passes
    row = MetricRow(name, None, None, bootstrap.low,
                    ev.promotion_margin if required else None, passed or not required, "bootstrap")
    state = "exceeds" if passed else "does not exceed"
    sentence = (f"{bootstrap.confidence:.0%} interval of the {ev.primary_metric} improvement is "
                f"[{bootstrap.low:+.4f}, {bootstrap.high:+.4f}]; its lower bound {state} the "
                f"margin {ev.promotion_margin:.4f}" + ("" if required else " (not required)"))
    return row, sentence


def decide(
    spec: PipelineSpec,
    candidate: dict[str, float],
    champion: dict[str, float] | None,
    bootstrap: BootstrapResult | None = None,
    trusted: TrustedScores | None = None,
) -> Decision:
    """Whether the candidate should replace the champion, checking every rule of the spec.

    Every candidate must reach `evaluation.minimum` on the new holdout. A first model (no
    champion, or a champion without the primary metric) needs nothing more. Otherwise the
    candidate must also beat the champion's primary metric by more than `promotion_margin`, may
    not fall behind on any guard metric by more than its tolerance, and, when
    `bootstrap.require_lower_bound` is set, the bootstrap interval's lower bound must exceed
    the margin. With `trusted`, the candidate may not score worse than the champion on the
    champion's trusted holdout by more than `trusted_tolerance`; a holdout that could not be
    used is named in the reasons as a warning. Every check is run and recorded, so a rejection
    lists all the reasons at once.

    Returns:
        The verdict; `reasons` holds the failed checks when rejected, the passed ones otherwise,
        then any warning about a check that was skipped.
    """
    ev = spec.evaluation
    primary = ev.primary_metric
    if champion is None or champion.get(primary) is None:
        why = ("first model (no champion)" if champion is None
               else f"the champion has no recorded {primary}")
        checks = [_minimum_row(spec, candidate, why)]
    else:
        checks = [_primary_row(spec, candidate, champion)]
        checks += [_guard_row(g.name, g.tolerance, candidate, champion)
                   for g in ev.guard_metrics]
        boot = _bootstrap_row(spec, bootstrap)
        if boot is not None:
            checks.append(boot)
        if ev.minimum is not None:
            checks.append(_minimum_row(spec, candidate, "minimum of the spec"))
    warnings = []
    if trusted is not None:
        check = _trusted_row(spec, trusted)
        if isinstance(check, str):
            warnings.append(check)
        else:
            checks.append(check)
    rows = [row for row, _ in checks]
    promote = all(row.passed for row in rows)
    reasons = [sentence for row, sentence in checks if row.passed == promote] + warnings
    logger.info("promotion decision for %s: %s", spec.name, "promote" if promote else "reject")
    return Decision(promote, reasons, rows)


def _cell(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:+.4f}" if signed else f"{value:.4f}"


def decision_markdown(decision: Decision, spec: PipelineSpec) -> str:
    """The decision as markdown: a table of every check and the verdict with its reasons."""
    verdict = "promote the candidate" if decision.promote else "keep the champion"
    lines = [
        f"## {spec.name}: {verdict}",
        "",
        f"Primary metric **{spec.evaluation.primary_metric}** ({spec.evaluation.direction}), "
        f"promotion margin {spec.evaluation.promotion_margin:g}.",
        "",
        "| metric | candidate | champion | improvement | limit | check |",
        "|---|---:|---:|---:|---:|:---:|",
    ]
    for row in decision.rows:
        lines.append(
            f"| {row.metric} | {_cell(row.candidate)} | {_cell(row.champion)} | "
            f"{_cell(row.delta, signed=True)} | {_cell(row.limit)} | "
            f"{'pass' if row.passed else '**fail**'} |"
        )
    lines += ["", f"**Verdict: {verdict}.**", ""]
    lines += [f"- {reason}" for reason in decision.reasons]
    return "\n".join(lines) + "\n"


# --- plots ------------------------------------------------------------------------------------

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
