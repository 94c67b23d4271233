"""The promotion decision: every check of candidate against champion, and the verdict."""

from __future__ import annotations

import logging

from mlops.core.spec import PipelineSpec
from mlops.core.spec.evaluation import METRIC_DIRECTIONS
from mlops.evaluation.decision import BootstrapResult, Decision, MetricRow, TrustedScores

logger = logging.getLogger(__name__)


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
