"""Label drift: the new data's target against the champion's training sample.

Judged by the drift check's own methods and default thresholds (``mlops.drift``): a categorical
column for a classifier's target, a numeric one for a regression's. A shuffled target keeps its
distribution, so this catches inverted or re-coded labels and a changed base rate, not noise;
the promotion gate's minimum and trusted holdout catch the rest.
"""

from __future__ import annotations

import pyarrow as pa

from mlops.core.spec import PipelineSpec
from mlops.drift.compute import ColumnDrift, DriftColumn, judge_column


def target_column(spec: PipelineSpec) -> DriftColumn:
    return DriftColumn(spec.target, "cat" if spec.task == "classification" else "num")


def label_drift(reference: pa.Table, current: pa.Table, spec: PipelineSpec) -> ColumnDrift:
    """The target's verdict; `evaluation.label_drift_threshold` replaces the method's default.

    Both tables hold the target under the spec's name.
    """
    return judge_column(
        target_column(spec), reference.select([spec.target]), current.select([spec.target]),
        spec, spec.evaluation.label_drift_threshold,
    )


def describe(verdict: ColumnDrift) -> str:
    """'jensenshannon distance 0.4123 >= threshold 0.1': the score, which side, the limit.

    A distance drifts at or above its threshold, a p-value below it; the verdict says which.
    """
    above = verdict.score >= verdict.threshold
    sign = ">=" if above else "<"
    return f"{verdict.method_label} {verdict.score:.4g} {sign} threshold {verdict.threshold:g}"
