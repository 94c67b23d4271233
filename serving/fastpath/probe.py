"""Checking a compiled pipeline against the plain one: probe values and the comparison."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from serving.fastpath.common import Output, Unsupported
from serving.fastpath.pipeline import FastPipeline

# Manifest dtypes whose coercion accepts a null.
_NULLABLE = frozenset({"float64", "float32", "Float64", "Int64", "boolean", "str", "category",
                       "object", "string", "datetime64[ns]"})
UNSEEN = "~unseen-category~"


def probe_values(dtype: str, n_rows: int, categories: Sequence[str],
                 rng: np.random.Generator, rough: bool) -> list[Any]:
    """JSON-like values of one column for probe rows: spread numbers, the column's known
    categories and, if `rough`, unseen categories and nulls where the dtype allows them."""
    if dtype in ("float64", "float32", "Float64"):
        values = (rng.normal(size=n_rows) * 10.0 ** rng.integers(-2, 4, n_rows)).tolist()
    elif dtype in ("int64", "int32", "Int64"):
        values = rng.integers(-5, 500, n_rows).tolist()
    elif dtype in ("bool", "boolean"):
        values = (rng.random(n_rows) < 0.5).tolist()
    elif dtype.startswith("datetime64"):
        hours = rng.integers(0, 50_000, n_rows)
        values = [str(np.datetime64("2010-01-01T00:00:00") + np.timedelta64(int(h), "h"))
                  for h in hours]
    else:
        choices = [*categories, UNSEEN] if rough or not categories else list(categories)
        values = [choices[i] for i in rng.integers(0, len(choices), n_rows)]
    if rough and dtype in _NULLABLE:
        values = [None if gap else v for v, gap in zip(values, rng.random(n_rows) < 0.15,
                                                       strict=True)]
    return values


def _equal(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    if a is None or b is None:
        return a is b
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    return bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))


def compare(fast: FastPipeline, plain: Callable[[], Output], columns: Sequence[Any],
            n_rows: int, probabilities: bool) -> bool:
    """Whether both paths answered these columns, with equal outputs (False when the fast
    path declined them, or both refused them).

    Raises:
        Unsupported: the answers differ, or one path failed where the other did not.
    """
    try:
        got = fast.run(columns, n_rows, probabilities)
    except Exception as exc:  # noqa: BLE001 - any failure here means: do not use it
        got = exc
    if got is None:
        return False
    try:
        expected = plain()
    except (TypeError, ValueError) as exc:
        if isinstance(got, (TypeError, ValueError)):
            return False
        raise Unsupported(f"the pipeline refused rows the fast path scored: {exc}") from exc
    if isinstance(got, Exception):
        raise Unsupported(f"the fast path failed where the pipeline did not: {got!r}")
    for what, mine, theirs in zip(("predictions", "probabilities"), got, expected, strict=True):
        if not _equal(mine, theirs):
            raise Unsupported(f"{what} differ")
    return True
