"""Data drift between the champion's reference sample and current data, per column, on every row.

The verdicts are Evidently's: the method per column is the one Evidently 0.7 picks by default
(``_get_default_stattest`` in ``evidently.legacy.calculations.stattests.registry``), the
threshold is that method's default unless the spec overrides it, and drift means what it means
there (a distance at or above the threshold, a p-value below it). Only the two methods Evidently
picks for references of more than 1000 rows are computed here instead of by Evidently, because
on big tables they are most of a check's cost (scipy's Wasserstein takes about 0.5 s per column
of 1M x 1M rows, and Evidently's preset computes every column three times):

- ``wasserstein`` (numeric columns with more than 5 distinct values): the exact first Wasserstein
  distance normed by the reference's standard deviation, as ``scipy.stats.wasserstein_distance``
  computes it, but from two sorted arrays merged in linear time instead of scipy's argsorts,
  merge sort and binary searches (about 2x faster; equal to scipy's to 1e-12 relative);
- ``jensenshannon`` on categorical columns: from Arrow's value counts instead of pandas'.

Every other method (small references, per-column overrides) runs Evidently's own stattest.
``tests/mlops/drift/test_drift.py`` checks both kernels against Evidently's functions. Evidently is
imported only when a column needs one of its stattests (about 4 s): judging columns by the two
kernels alone, as the label-drift gate does on a training run, never imports it.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from mlops.core.errors import DataValidationError, SpecError
from mlops.core.spec import PipelineSpec
from mlops.drift.methods import FEW_VALUES, KERNELS, Kind, default_method, stattests
from mlops.drift.scores import jensenshannon_counts, wasserstein_normed
from serving.columns import normalize_name

if TYPE_CHECKING:
    from evidently.legacy.calculations.stattests.registry import StatTest

    from mlops.drift.methods import Kernel

logger = logging.getLogger(__name__)

KIND_OF_DTYPE: dict[str, Kind] = {
    "int": "num", "float": "num", "category": "cat", "string": "cat", "bool": "cat",
}
# Columns judged at a time (threads).
WORKERS = 2


@dataclass(frozen=True)
class DriftColumn:
    name: str
    kind: Kind


@dataclass(frozen=True)
class ColumnDrift:
    """One column's verdict.

    Attributes:
        method: Evidently's stattest name (``wasserstein``, ``jensenshannon``, ``ks``...).
        method_label: Its display name, as Evidently's report shows it.
        score: A distance, or a p-value for the p-value tests.
        threshold: The limit the score was judged against.
    """

    column: str
    kind: Kind
    method: str
    method_label: str
    score: float
    threshold: float
    drifted: bool


@dataclass(frozen=True)
class DriftResult:
    columns: tuple[ColumnDrift, ...]
    drift_share: float
    reference_rows: int
    current_rows: int

    @property
    def drifted_columns(self) -> list[str]:
        return [c.column for c in self.columns if c.drifted]

    @property
    def share(self) -> float:
        return len(self.drifted_columns) / len(self.columns) if self.columns else 0.0

    @property
    def dataset_drift(self) -> bool:
        """Evidently's rule: drift when the share of drifted columns reaches the threshold."""
        return bool(self.columns) and self.share >= self.drift_share

    @property
    def summary(self) -> str:
        """'3 of 25 columns drifted (share 0.12 >= 0.1)'; the comparison says which side."""
        sign = ">=" if self.dataset_drift else "<"
        return (
            f"{len(self.drifted_columns)} of {len(self.columns)} columns drifted "
            f"(share {self.share:.2f} {sign} {self.drift_share:g})"
        )

    def table(self) -> list[dict[str, Any]]:
        return [
            {
                "column": c.column, "kind": c.kind, "method": c.method,
                "score": round(c.score, 6), "threshold": c.threshold, "drifted": c.drifted,
            }
            for c in self.columns
        ]


def drift_columns(spec: PipelineSpec) -> list[DriftColumn]:
    """The spec's feature columns Evidently can judge (datetime features are left out, as
    Evidently's DataDriftPreset leaves them out)."""
    return [
        DriftColumn(c.name, KIND_OF_DTYPE[c.dtype])
        for c in spec.feature_columns
        if c.dtype in KIND_OF_DTYPE
    ]


def _override(settings: dict[str, Any], column: str) -> Any:
    key = normalize_name(column)
    return next((v for k, v in settings.items() if normalize_name(k) == key), None)


# -- column values ---------------------------------------------------------------------------


def _numeric(values: pa.ChunkedArray) -> np.ndarray:
    """Finite values as float64, nulls and +-inf dropped (Evidently drops them too)."""
    array = pc.drop_null(values).to_numpy().astype(np.float64, copy=False)
    finite = np.isfinite(array)
    return array if finite.all() else array[finite]


def _counts(values: pa.ChunkedArray) -> dict[Any, int]:
    """Value -> count of the non-missing values (None and NaN are missing, as in pandas)."""
    if pa.types.is_dictionary(values.type):
        values = values.cast(values.type.value_type)
    counted = pc.value_counts(values)
    keys = counted.field("values").to_pylist()
    numbers = counted.field("counts").to_pylist()
    return {
        k: n for k, n in zip(keys, numbers, strict=True)
        if k is not None and not (isinstance(k, float) and not np.isfinite(k))
    }


@dataclass
class _Column:
    """One column's cleaned values on both sides, in the form its method needs."""

    spec: DriftColumn
    ref: np.ndarray | dict[Any, int]
    cur: np.ndarray | dict[Any, int]

    @property
    def ref_rows(self) -> int:
        return self.ref.size if isinstance(self.ref, np.ndarray) else sum(self.ref.values())

    @property
    def cur_rows(self) -> int:
        return self.cur.size if isinstance(self.cur, np.ndarray) else sum(self.cur.values())

    def distinct(self, limit: int) -> int:
        """Distinct values over both sides; exact up to `limit`, else some number above it."""
        if isinstance(self.ref, dict):
            return len(self.ref.keys() | self.cur.keys())
        sides = [_distinct_sorted(side, limit) for side in (self.ref, self.cur)]
        if any(side is None for side in sides):
            return limit + 1
        return int(np.union1d(*sides).size)

    def series(self) -> tuple[pd.Series, pd.Series]:
        """Both sides as pandas Series, for Evidently's own stattests."""
        return _series(self.ref), _series(self.cur)


def _series(side: np.ndarray | dict[Any, int]) -> pd.Series:
    if isinstance(side, np.ndarray):
        return pd.Series(side)
    return pd.Series(list(side.keys()), dtype=object).repeat(list(side.values()))


def _distinct_sorted(values: np.ndarray, limit: int) -> np.ndarray | None:
    """The distinct values of a sorted array, or None when there are more than `limit`."""
    if values.size == 0:
        return values
    starts = np.flatnonzero(values[1:] != values[:-1])
    if starts.size >= limit:
        return None
    return np.concatenate(([values[0]], values[starts + 1]))


def _prepare(column: DriftColumn, reference: pa.Table, current: pa.Table) -> _Column | str:
    """Both sides of one column cleaned, or what makes the column unusable."""
    sides = []
    for label, table in (("reference", reference), ("current", current)):
        values = table.column(column.name)
        if column.kind == "num" and not (
            pa.types.is_integer(values.type) or pa.types.is_floating(values.type)
        ):
            return f"'{column.name}' in the {label} data is {values.type}, expected numbers"
        side = np.sort(_numeric(values)) if column.kind == "num" else _counts(values)
        if len(side) == 0:
            return f"'{column.name}' has no values in the {label} data"
        sides.append(side)
    return _Column(column, *sides)


# -- methods ---------------------------------------------------------------------------------


def _resolve(column: _Column, spec: PipelineSpec) -> StatTest | Kernel | str:
    """The column's method (the spec's override, else Evidently's default choice), or why
    the override cannot be used."""
    name = _override(spec.drift.methods, column.spec.name)
    if name is None:
        method = default_method(column.spec.kind, column.ref_rows, column.distinct(FEW_VALUES))
        return KERNELS.get((column.spec.kind, method)) or stattests()[method]
    stattests()
    from evidently.legacy.calculations.stattests.registry import (  # noqa: PLC0415
        StatTestInvalidFeatureTypeError,
        StatTestNotFoundError,
        get_registered_stattest,
    )
    from evidently.legacy.core import ColumnType  # noqa: PLC0415

    try:
        return get_registered_stattest(name, ColumnType(column.spec.kind))
    except (StatTestNotFoundError, StatTestInvalidFeatureTypeError) as exc:
        return f"drift.methods.{column.spec.name}: {exc}"


def _judge(column: _Column, test: StatTest | Kernel, threshold: float | None) -> ColumnDrift:
    limit = test.default_threshold if threshold is None else threshold
    kind = column.spec.kind
    if test.name == "wasserstein" and kind == "num":
        score = wasserstein_normed(column.ref, column.cur)
        drifted = score >= limit
    elif test.name == "jensenshannon" and kind == "cat":
        score = jensenshannon_counts(column.ref, column.cur)
        drifted = score >= limit
    else:
        from evidently.legacy.core import ColumnType  # noqa: PLC0415

        result = test(*column.series(), ColumnType(kind), limit)
        score, drifted = float(result.drift_score), bool(result.drifted)
    return ColumnDrift(
        column.spec.name, kind, test.name, test.display_name, score, float(limit), bool(drifted)
    )


@dataclass(frozen=True)
class _Problem:
    message: str
    data: bool  # a problem of the data; otherwise of the spec


def _one(
    spec_column: DriftColumn, reference: pa.Table, current: pa.Table, spec: PipelineSpec
) -> ColumnDrift | _Problem:
    column = _prepare(spec_column, reference, current)
    if isinstance(column, str):
        return _Problem(column, data=True)
    test = _resolve(column, spec)
    if isinstance(test, str):
        return _Problem(test, data=False)
    return _judge(column, test, _override(spec.drift.thresholds, spec_column.name))


def compute_drift(
    reference: pa.Table | pd.DataFrame,
    current: pa.Table | pd.DataFrame,
    spec: PipelineSpec,
    workers: int = WORKERS,
) -> DriftResult:
    """Judge every drift column of the spec on every row of both tables.

    Both tables must hold the columns under the spec's names (see ``mlops.drift.data``).
    Columns are judged `workers` at a time: numpy and Arrow release the GIL while they sort
    and count, so threads use the cores; memory holds that many columns' sorted copies.

    Raises:
        DataValidationError: a column is missing, holds no values on one side, or is not
            numeric where the spec says it is; every such column is named at once.
        SpecError: the spec names a method Evidently does not have for that column's type.
    """
    reference, current = _as_table(reference), _as_table(current)
    columns = drift_columns(spec)
    if not columns:
        raise SpecError(f"spec '{spec.name}' has no numeric or categorical feature to judge")
    missing = {
        label: [c.name for c in columns if c.name not in table.column_names]
        for label, table in (("reference", reference), ("current", current))
    }
    if any(missing.values()):
        raise DataValidationError(
            "cannot judge drift, columns missing: "
            + "; ".join(f"{label} data lacks {names}" for label, names in missing.items() if names)
        )
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        outcomes = list(pool.map(lambda c: _one(c, reference, current, spec), columns))
    verdicts = [o for o in outcomes if isinstance(o, ColumnDrift)]
    data_problems = [o.message for o in outcomes if isinstance(o, _Problem) and o.data]
    spec_problems = [o.message for o in outcomes if isinstance(o, _Problem) and not o.data]
    if data_problems:
        raise DataValidationError("cannot judge drift: " + "; ".join(data_problems))
    if spec_problems:
        raise SpecError("; ".join(spec_problems))
    result = DriftResult(
        tuple(verdicts), spec.drift.drift_share, reference.num_rows, current.num_rows
    )
    logger.info("drift of %s: %s", spec.name, result.summary)
    return result


def _as_table(frame: pa.Table | pd.DataFrame) -> pa.Table:
    if isinstance(frame, pa.Table):
        return frame
    return pa.Table.from_pandas(frame, preserve_index=False)


def judge_column(
    column: DriftColumn,
    reference: pa.Table | pd.DataFrame,
    current: pa.Table | pd.DataFrame,
    spec: PipelineSpec,
    threshold: float | None = None,
) -> ColumnDrift:
    """One column judged by the rules of `compute_drift` (method, default threshold, kernels),
    for a column that is not a feature: the label-drift gate judges the target with it.

    Raises:
        DataValidationError: the column holds no values on one side, or no numbers where
            `column.kind` says numeric.
    """
    prepared = _prepare(column, _as_table(reference), _as_table(current))
    if isinstance(prepared, str):
        raise DataValidationError(f"cannot judge drift: {prepared}")
    test = _resolve(prepared, spec)
    if isinstance(test, str):
        raise SpecError(test)
    return _judge(prepared, test, threshold)
