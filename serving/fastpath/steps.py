"""Numpy steps: each repeats one fitted transformer's ``transform``, same order and dtypes.

Each step is a frozen dataclass of plain values and arrays (what it read from the fitted
transformer), so a compiled pipeline can be stored and read back without scikit-learn
(`serving.fastpath.snapshot`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from serving.fastpath.common import (
    FLOAT,
    TEXT,
    Declined,
    Step,
    Unsupported,
    class_name,
    default_output,
)

FACTORIZE_MIN_ROWS = 1024  # rows from which `_codes` factorizes a column first


def _refuse_infinity(X: np.ndarray) -> np.ndarray:
    """scikit-learn's input check rejects infinity before imputers and scalers: let it."""
    if np.isinf(X).any():
        raise Declined("infinite value")
    return X


def _missing(X: np.ndarray) -> np.ndarray:
    """NaN cells; object cells are compared with themselves, as scikit-learn's mask does."""
    return np.isnan(X) if X.dtype.kind == "f" else X != X


@dataclass(frozen=True)
class Impute:
    """``SimpleImputer``: each column's missing cells get its fitted statistic."""

    statistics: np.ndarray
    kind: str

    def __call__(self, X: np.ndarray) -> np.ndarray:
        if self.kind == FLOAT:
            _refuse_infinity(X)
        mask = _missing(X)
        return np.where(mask, self.statistics, X) if mask.any() else X


def _imputer(step: Any, kind: str) -> Step:
    missing_marker = step.missing_values
    if step.add_indicator or not (isinstance(missing_marker, float) and np.isnan(missing_marker)):
        raise Unsupported("SimpleImputer with an indicator or a missing marker other than NaN")
    fill = np.dtype(step._fill_dtype)
    if (kind, fill) not in ((FLOAT, np.dtype(np.float64)), (TEXT, np.dtype(object))):
        raise Unsupported(f"SimpleImputer fitted on {fill} data gets {kind} data")
    stats = np.asarray(step.statistics_)
    if _missing(stats).any():
        raise Unsupported("SimpleImputer with a column that had no value in training")
    return Impute(stats.astype(fill), kind)


@dataclass(frozen=True)
class ShiftAndScale:
    """(X - shift) / scale, each part left out when the fitted scaler does not use it."""

    shift: np.ndarray | None
    scale: np.ndarray | None

    def __call__(self, X: np.ndarray) -> np.ndarray:
        X = _refuse_infinity(X)
        if self.shift is not None:
            X = X - self.shift
        return X / self.scale if self.scale is not None else X


def _standard(step: Any, kind: str) -> Step:
    return ShiftAndScale(step.mean_ if step.with_mean else None,
                         step.scale_ if step.with_std else None)


@dataclass(frozen=True)
class Rescale:
    """``MinMaxScaler``: X * scale + offset, clipped to the feature range if it clips."""

    scale: np.ndarray
    offset: np.ndarray
    low: float
    high: float
    clip: bool

    def __call__(self, X: np.ndarray) -> np.ndarray:
        X = _refuse_infinity(X) * self.scale
        X += self.offset
        return np.clip(X, self.low, self.high, out=X) if self.clip else X


def _minmax(step: Any, kind: str) -> Step:
    low, high = step.feature_range
    return Rescale(step.scale_, step.min_, low, high, bool(step.clip))


def _robust(step: Any, kind: str) -> Step:
    return ShiftAndScale(step.center_ if step.with_centering else None,
                         step.scale_ if step.with_scaling else None)


@dataclass(frozen=True)
class Column:
    """How an encoder codes one column: each known category's code after infrequent
    categories are grouped, and the code an unknown value gets (-1: none)."""

    codes: dict[str, int]
    unknown: int


def _encoding(step: Any, unknown_to_group: bool) -> tuple[Column, ...]:
    """The codes of an encoder whose categories are all text.

    With infrequent categories enabled (any ``max_categories`` or ``min_frequency``), a
    column that has some maps them, and, if `unknown_to_group`, unknown values, to its
    infrequent group, as ``_map_infrequent_categories`` does.
    """
    if np.dtype(step.dtype) != np.float64:
        raise Unsupported(f"{type(step).__name__} with dtype {step.dtype}")
    enabled = step._infrequent_enabled
    infrequent = step._infrequent_indices if enabled else [None] * len(step.categories_)
    mappings = step._default_to_infrequent_mappings if enabled else [None] * len(infrequent)
    columns = []
    for categories, rare, mapping in zip(step.categories_, infrequent, mappings, strict=True):
        if not all(type(c) is str for c in categories):
            raise Unsupported(f"{type(step).__name__} with categories that are not all text")
        codes = {c: (j if mapping is None else int(mapping[j])) for j, c in enumerate(categories)}
        group = codes[categories[rare[0]]] if rare is not None and unknown_to_group else -1
        columns.append(Column(codes, group))
    return tuple(columns)


def _codes(columns: Sequence[Column], X: np.ndarray) -> np.ndarray:
    """The code of each cell; unknown and missing values get their column's `unknown`.

    From `FACTORIZE_MIN_ROWS` rows on, each column is factorized first (pandas' hash table, in
    C) and only its distinct values are looked up: the same codes, without a Python step per
    cell (a batch of 64k rows); below it, the per-cell lookup is cheaper than the set-up.
    """
    codes = np.empty(X.shape, dtype=np.intp)
    for j, column in enumerate(columns):
        known, unknown = column.codes, column.unknown
        if X.shape[0] >= FACTORIZE_MIN_ROWS:
            found, distinct = pd.factorize(X[:, j], use_na_sentinel=True)
            lookup = [known.get(v, unknown) if type(v) is str else unknown for v in distinct]
            codes[:, j] = np.array([*lookup, unknown], dtype=np.intp).take(found)
        else:
            codes[:, j] = [known.get(v, unknown) if type(v) is str else unknown for v in X[:, j]]
    return codes


@dataclass(frozen=True)
class OneHot:
    """``OneHotEncoder`` (dense, nothing dropped): one 1.0 per known code, in its column's
    block of `offsets`; an unknown value is declined when the encoder `raises`."""

    columns: tuple[Column, ...]
    offsets: np.ndarray
    raises: bool

    def __call__(self, X: np.ndarray) -> np.ndarray:
        if self.raises and (_codes([Column(c.codes, -1) for c in self.columns], X) < 0).any():
            raise Declined("unknown category")
        codes = _codes(self.columns, X)
        rows, cols = np.nonzero(codes >= 0)
        out = np.zeros((X.shape[0], self.offsets[-1]), dtype=np.float64)
        out[rows, codes[rows, cols] + self.offsets[cols]] = 1
        return out


def _one_hot(step: Any, kind: str) -> Step:
    if step.sparse_output or getattr(step, "drop_idx_", None) is not None:
        raise Unsupported("OneHotEncoder with sparse output or dropped categories")
    if step.handle_unknown not in ("ignore", "infrequent_if_exist", "error"):
        raise Unsupported(f"OneHotEncoder with handle_unknown={step.handle_unknown!r}")
    columns = _encoding(step, unknown_to_group=step.handle_unknown == "infrequent_if_exist")
    return OneHot(columns, np.cumsum([0, *step._n_features_outs]),
                  step.handle_unknown == "error")


@dataclass(frozen=True)
class Ordinal:
    """``OrdinalEncoder``: each cell's code as a float; an unknown value gets
    `unknown_value`, or is declined when the encoder `raises`."""

    columns: tuple[Column, ...]
    raises: bool
    unknown_value: float

    def __call__(self, X: np.ndarray) -> np.ndarray:
        codes = _codes(self.columns, X)
        unknown = codes < 0
        out = codes.astype(np.float64)
        if unknown.any():
            if self.raises:
                raise Declined("unknown category")
            out[unknown] = self.unknown_value
        return out


def _ordinal(step: Any, kind: str) -> Step:
    if step.handle_unknown not in ("use_encoded_value", "error"):
        raise Unsupported(f"OrdinalEncoder with handle_unknown={step.handle_unknown!r}")
    raises = step.handle_unknown == "error"
    return Ordinal(_encoding(step, unknown_to_group=False), raises,
                   float("nan") if raises else float(step.unknown_value))


# class -> (builder, kinds of input it takes, kind of its output; "" for the same as its input)
STEPS: dict[str, tuple[Callable[[Any, str], Step], tuple[str, ...], str]] = {
    "sklearn.impute._base.SimpleImputer": (_imputer, (FLOAT, TEXT), ""),
    "sklearn.preprocessing._data.StandardScaler": (_standard, (FLOAT,), FLOAT),
    "sklearn.preprocessing._data.MinMaxScaler": (_minmax, (FLOAT,), FLOAT),
    "sklearn.preprocessing._data.RobustScaler": (_robust, (FLOAT,), FLOAT),
    "sklearn.preprocessing._encoders.OneHotEncoder": (_one_hot, (TEXT,), FLOAT),
    "sklearn.preprocessing._encoders.OrdinalEncoder": (_ordinal, (TEXT,), FLOAT),
}


def flat_steps(model: Any) -> list[Any]:
    """A pipeline's steps with nested pipelines flattened and 'passthrough' steps left out."""
    if class_name(model) != "sklearn.pipeline.Pipeline":
        return [model]
    default_output(model)
    flat: list[Any] = []
    for _, step in model.steps:
        if step is not None and not (isinstance(step, str) and step == "passthrough"):
            flat += flat_steps(step)
    return flat


def compile_steps(steps: Sequence[Any], kind: str) -> tuple[list[Step], str]:
    """Fitted transformers -> numpy steps; `kind` is what the first one receives.

    Returns:
        The steps, and the kind of what the last one returns.

    Raises:
        Unsupported: a step of another type, or one that would get data it was not fitted on.
    """
    compiled: list[Step] = []
    for step in steps:
        default_output(step)
        entry = STEPS.get(class_name(step))
        if entry is None:
            raise Unsupported(f"a {type(step).__name__} step")
        build, accepts, produces = entry
        if kind not in accepts:
            raise Unsupported(f"{type(step).__name__} would get {kind} data")
        compiled.append(build(step, kind))
        kind = produces or kind
    return compiled, kind
