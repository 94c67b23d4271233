"""Evidently's HTML drift report, its verdicts read through one typed helper, and the summary.

The verdicts that decide retraining come from ``mlops.drift`` on every row. The HTML report is
Evidently's ``DataDriftPreset`` on a seeded sample of at most ``drift.report_rows`` rows per
side, with the same methods and thresholds: the preset computes each column three times and
renders widgets as it goes, about 130 s on 1M x 1M rows of 25 columns and 3-5 s on 10k x 10k
(mostly a fixed cost per column). Where the sample's verdict on a column differs from the one
on all rows, the summary says so.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, ValidationError

from mlops.core.errors import ReportError
from mlops.drift.compute import DriftResult

REPORT_FILE = "report.html"
RESULT_FILE = "drift.json"
_VALUE_DRIFT = "evidently:metric_v2:ValueDrift"
_DRIFTED_COUNT = "evidently:metric_v2:DriftedColumnsCount"


@dataclass(frozen=True)
class EvidentlyColumn:
    column: str
    method_label: str
    score: float
    threshold: float
    drifted: bool


@dataclass(frozen=True)
class EvidentlyDrift:
    """What an Evidently drift report concluded: per column, and over the dataset."""

    columns: dict[str, EvidentlyColumn]
    drifted_count: int
    share: float


@dataclass(frozen=True)
class ReportSample:
    """What the HTML report was computed on, and what Evidently concluded there."""

    verdicts: EvidentlyDrift
    reference_rows: int
    current_rows: int


# Evidently's snapshot export (``Snapshot.dict()``), only the fields read here.
class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore")


class _Params(_Loose):
    type: str
    column: str | None = None
    method: str | None = None
    threshold: float | None = None


class _Metric(_Loose):
    config: _Params
    value: float | dict[str, float]


class _MetricConfig(_Loose):
    params: _Params


class _Test(_Loose):
    id: str
    metric_config: _MetricConfig
    status: str


class _Snapshot(_Loose):
    metrics: list[_Metric]
    tests: list[_Test]


def read_evidently_drift(snapshot: Any) -> EvidentlyDrift:
    """Per-column verdicts of a report that holds ValueDrift metrics (a DataDriftPreset), run
    with ``include_tests=True``: a column drifted when its value-drift test failed.

    Raises:
        ReportError: the snapshot does not have the shape Evidently 0.7 exports, a column has
            no test result, or a test errored.
    """
    try:
        parsed = _Snapshot.model_validate(snapshot.dict())
    except ValidationError as exc:
        raise ReportError(f"Evidently's snapshot has an unexpected shape: {exc}") from exc
    status = {
        t.metric_config.params.column: t.status
        for t in parsed.tests
        if t.metric_config.params.type == _VALUE_DRIFT
    }
    columns, count, share = {}, None, None
    for metric in parsed.metrics:
        config = metric.config
        if config.type == _DRIFTED_COUNT and isinstance(metric.value, dict):
            count, share = int(metric.value["count"]), float(metric.value["share"])
        if config.type != _VALUE_DRIFT:
            continue
        if status.get(config.column) not in ("SUCCESS", "FAIL"):
            raise ReportError(
                f"Evidently's drift test for '{config.column}' is {status.get(config.column)}"
            )
        columns[config.column] = EvidentlyColumn(
            column=str(config.column), method_label=str(config.method),
            score=float(metric.value), threshold=float(config.threshold or 0.0),
            drifted=status[config.column] == "FAIL",
        )
    if count is None or share is None:
        raise ReportError("Evidently's snapshot has no DriftedColumnsCount result")
    return EvidentlyDrift(columns, count, share)


def _sample(table: pa.Table, names: list[str], rows: int, seed: int) -> pd.DataFrame:
    table = table.select(names)
    if table.num_rows > rows:
        picked = np.random.default_rng(seed).choice(table.num_rows, size=rows, replace=False)
        table = table.take(np.sort(picked))
    return table.to_pandas()


def _method_for_report(method: str, kind: str) -> str | None:
    """The method name to pin in the preset, or None where Evidently only reaches that method
    through its automatic choice (chi-square and z on numeric columns are not registered)."""
    from evidently.legacy.calculations.stattests.registry import (  # noqa: PLC0415
        StatTestInvalidFeatureTypeError,
        get_registered_stattest,
    )
    from evidently.legacy.core import ColumnType  # noqa: PLC0415

    try:
        get_registered_stattest(method, ColumnType(kind))
    except StatTestInvalidFeatureTypeError:
        return None
    return method


def evidently_report(
    reference: pa.Table, current: pa.Table, result: DriftResult, *, rows: int, seed: int = 0
) -> tuple[str, ReportSample]:
    """Run Evidently's DataDriftPreset on at most `rows` sampled rows per side.

    The preset gets the columns, methods, thresholds and drift share that `result` was judged
    with, so the report explains the same test.

    Returns:
        The report as a standalone HTML page, and what it was computed on and concluded.
    """
    from evidently import DataDefinition, Dataset, Report  # noqa: PLC0415 - ~4 s import
    from evidently.presets import DataDriftPreset  # noqa: PLC0415

    names = [c.column for c in result.columns]
    ref = _sample(reference, names, rows, seed)
    cur = _sample(current, names, rows, seed + 1)
    definition = DataDefinition(
        numerical_columns=[c.column for c in result.columns if c.kind == "num"],
        categorical_columns=[c.column for c in result.columns if c.kind == "cat"],
    )
    methods = {c.column: _method_for_report(c.method, c.kind) for c in result.columns}
    preset = DataDriftPreset(
        columns=names,
        drift_share=result.drift_share,
        per_column_method={k: v for k, v in methods.items() if v is not None},
        per_column_threshold={c.column: c.threshold for c in result.columns},
    )
    snapshot = Report([preset], include_tests=True).run(
        Dataset.from_pandas(cur, data_definition=definition),
        Dataset.from_pandas(ref, data_definition=definition),
    )
    sample = ReportSample(read_evidently_drift(snapshot), len(ref), len(cur))
    return snapshot.get_html_str(as_iframe=False), sample


def disagreements(result: DriftResult, verdicts: EvidentlyDrift) -> list[str]:
    """Columns the report's sample judges differently from all rows, described."""
    notes = []
    for column in result.columns:
        seen = verdicts.columns.get(column.column)
        if seen is None:
            notes.append(f"{column.column}: not in the report")
        elif seen.drifted != column.drifted:
            notes.append(
                f"{column.column}: {'drift' if seen.drifted else 'no drift'} on the sample "
                f"(score {seen.score:.4f}), {'drift' if column.drifted else 'no drift'} on all "
                f"rows (score {column.score:.4f}, threshold {column.threshold:g})"
            )
    return notes


def result_json(result: DriftResult, context: dict[str, Any]) -> bytes:
    """The verdicts as JSON, to keep next to the HTML report."""
    payload = {
        **context,
        "summary": result.summary,
        "dataset_drift": result.dataset_drift,
        "drift_share": result.drift_share,
        "reference_rows": result.reference_rows,
        "current_rows": result.current_rows,
        "columns": [asdict(c) for c in result.columns],
    }
    return json.dumps(payload, indent=2, default=str).encode()


def drift_markdown(
    result: DriftResult,
    *,
    title: str,
    sources: str,
    report_url: str | None,
    report: ReportSample | None,
    outcome: str,
) -> str:
    """The run's summary: verdict, what was compared, every column, and where the report is."""
    lines = [f"### {title}", "", f"**{result.summary}**: {outcome}", "", sources, ""]
    lines += ["| column | method | score | threshold | drifted |", "|---|---|---|---|---|"]
    lines += [
        f"| {c.column} | {c.method} | {c.score:.4f} | {c.threshold:g} | "
        f"{'**yes**' if c.drifted else 'no'} |"
        for c in result.columns
    ]
    if report_url and report:
        notes = disagreements(result, report.verdicts)
        lines += [
            "", f"Evidently's report: `{report_url}` (DataDriftPreset on a seeded sample of "
            f"{report.reference_rows:,} reference and {report.current_rows:,} current rows; "
            "the verdicts above are on every row).",
        ]
        lines += [f"- the sample differs on {note}" for note in notes] or [
            f"- its verdicts agree on all {len(result.columns)} columns."
        ]
    return "\n".join(lines)
