"""JSON values -> the dtype the manifest records for a feature, as training's coercion did.

The pipeline must see exactly what it saw in training, so each column is converted to its
trained dtype; a value that cannot take it is an `Uncoercible` error naming why. Speed matters
(one call per column per request): columns are built with numpy where the dtype allows,
pandas extension arrays otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from serving.arrow_text import stored_in_arrow

Column = Sequence[Any]
Coercer = Callable[[Column], Any]

_TRUE = frozenset({"true", "t", "yes", "y", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "0"})


class Uncoercible(ValueError):
    """A column's values cannot become its trained dtype; the message says why."""


def _flat(array: np.ndarray) -> np.ndarray:
    if array.ndim != 1:
        raise Uncoercible("expected one value per row, got nested lists")
    return array


def _array(values: Column) -> np.ndarray:
    """The values as one numpy array; lists of different lengths (``[[1], [1, 2]]``) and
    values numpy cannot hold are the client's error, not ours."""
    try:
        return _flat(np.asarray(values))
    except (TypeError, ValueError, OverflowError) as exc:
        raise Uncoercible("expected one value per row, got nested lists") from exc


def _as_float(values: Column) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError, OverflowError) as exc:
        raise Uncoercible(f"expected numbers ({exc})") from exc
    return _flat(array)


def _float32(values: Column) -> np.ndarray:
    floats = _as_float(values)
    too_large = np.abs(floats) > np.finfo(np.float32).max
    if too_large.any() and np.isfinite(floats[too_large]).any():
        raise Uncoercible(f"{_first(floats, too_large)} is beyond the float32 range")
    return floats.astype(np.float32)


def _first(values: np.ndarray, where: np.ndarray) -> str:
    return repr(values[where][0].item())[:40]


def _within(ints: np.ndarray, dtype: type[np.integer]) -> np.ndarray:
    """`ints` as `dtype`; a value outside its range is an error, never a wrapped number."""
    if ints.dtype.kind == "b" or ints.dtype == dtype:
        return ints.astype(dtype)  # JSON integers numpy made int64 all fit in int64
    info = np.iinfo(dtype)
    if len(ints) and (ints.min() < info.min or ints.max() > info.max):
        outside = (ints < info.min) | (ints > info.max)
        raise Uncoercible(
            f"{_first(ints, outside)} is outside the {np.dtype(dtype).name} range "
            f"[{info.min}, {info.max}]"
        )
    return ints.astype(dtype)


def _integral(values: Column, dtype: type[np.integer] = np.int64) -> tuple[np.ndarray, np.ndarray]:
    """Integer values and a missing mask; a fractional number or one beyond `dtype`'s range
    is an error, not a truncation or a wrapped value."""
    array = _array(values)
    if array.dtype.kind in "iub":
        return _within(array, dtype), np.zeros(len(array), dtype=bool)
    if array.dtype == object:
        # Nulls make numpy fall back to objects: read the other values on their own, so
        # integers beyond 2**53 stay exact instead of passing through float64.
        nulls = np.array([v is None for v in values], dtype=bool)
        present = _array([v for v in values if v is not None])
        if nulls.any() and present.dtype.kind in "iub":
            ints = np.zeros(len(nulls), dtype=dtype)
            ints[~nulls] = _within(present, dtype)
            return ints, nulls
    floats = _as_float(values)
    missing = np.isnan(floats)
    present = floats[~missing]
    if not np.all(np.isfinite(present)) or not np.all(present == np.round(present)):
        raise Uncoercible("expected whole numbers")
    info = np.iinfo(dtype)
    # Bounds one past each end, in float64: for int64 both round to +-2**63 itself, which
    # is refused too (JSON integers beyond int64 reach us as floats rounded to 2**63).
    outside = (present <= float(info.min) - 1) | (present >= float(info.max) + 1)
    if outside.any():
        raise Uncoercible(
            f"{_first(present, outside)} is outside the {np.dtype(dtype).name} range "
            f"[{info.min}, {info.max}]"
        )
    return np.where(missing, 0, floats).astype(dtype), missing


def _int64(values: Column, dtype: type[np.integer] = np.int64) -> np.ndarray:
    ints, missing = _integral(values, dtype)
    if missing.any():
        raise Uncoercible("holds nulls, but the model was trained without missing values here")
    return ints


def _nullable_int(values: Column) -> Any:
    ints, missing = _integral(values)
    return pd.arrays.IntegerArray(ints, missing)


def _nullable_float(values: Column) -> Any:
    floats = _as_float(values)
    return pd.arrays.FloatingArray(floats, np.isnan(floats))


def _bool_of(value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise Uncoercible(f"expected true/false, got {value!r}")


def _nullable_bool(values: Column) -> Any:
    array = _array(values)
    if array.dtype == np.bool_:
        return pd.arrays.BooleanArray(array, np.zeros(len(array), dtype=bool))
    flags = [_bool_of(v) for v in values]
    missing = np.array([f is None for f in flags], dtype=bool)
    return pd.arrays.BooleanArray(np.array([bool(f) for f in flags]), missing)


def _numpy_bool(values: Column) -> np.ndarray:
    result = _nullable_bool(values)
    if result.isna().any():
        raise Uncoercible("holds nulls, but the model was trained without missing values here")
    return result.to_numpy(dtype=bool)


VECTOR_MIN_ROWS = 1024  # rows from which a text column is checked in C


def _many_texts(values: Column) -> bool:
    """Whether `values` is a long object array of text and nulls (None or NaN, both missing
    after coercion), so that it can be checked and converted without a Python step per value."""
    return (isinstance(values, np.ndarray) and values.dtype == object
            and len(values) >= VECTOR_MIN_ROWS
            and pd.api.types.infer_dtype(values, skipna=True) == "string")


def _text(dtype: str) -> Coercer:
    resolved = pd.api.types.pandas_dtype(dtype)  # once, not per request
    on_arrow = stored_in_arrow(resolved)

    def coerce(values: Column) -> Any:
        if on_arrow and _many_texts(values):
            # A batch's column: the same array, checked and built in C (the check below
            # costs a Python step per value).
            return pd.arrays.ArrowStringArray(
                pa.array(values, type=pa.large_string(), from_pandas=True), dtype=resolved)
        if on_arrow and all(type(v) is str or v is None for v in values):
            # The array pd.array builds from text and nulls, without its conversion pass
            # over every value (half the cost of a one-row column).
            return pd.arrays.ArrowStringArray(pa.array(values, type=pa.large_string()),
                                              dtype=resolved)
        if any(isinstance(v, list | dict) for v in values):
            raise Uncoercible("expected text, got a list or an object")
        return pd.array(values, dtype=resolved)

    return coerce


def _datetime(dtype: str) -> Coercer:
    target = pd.api.types.pandas_dtype(dtype)
    tz = getattr(target, "tz", None)

    def coerce(values: Column) -> Any:
        if any(isinstance(v, list | dict | bool) for v in values):
            raise Uncoercible("expected ISO 8601 date-times")
        try:
            stamps = pd.to_datetime(list(values), format="ISO8601", utc=True)
        except (TypeError, ValueError, OverflowError) as exc:
            raise Uncoercible(f"expected ISO 8601 date-times ({exc})") from exc
        stamps = stamps.tz_convert(tz) if tz is not None else stamps.tz_localize(None)
        return stamps.astype(target).array

    return coerce


def _fallback(dtype: str) -> Coercer:
    def coerce(values: Column) -> Any:
        try:
            return pd.array(values, dtype=dtype)
        except (TypeError, ValueError, OverflowError) as exc:
            raise Uncoercible(str(exc)) from exc

    return coerce


_COERCERS: dict[str, Coercer] = {
    "float64": _as_float,
    "float32": _float32,
    "Float64": _nullable_float,
    "int64": _int64,
    "int32": lambda v: _int64(v, np.int32),
    "Int64": _nullable_int,
    "boolean": _nullable_bool,
    "bool": _numpy_bool,
    "str": _text("str"),
    "string": _text("string"),
    "category": _text("str"),
    "object": _text("str"),
}


def coercer_for(dtype: str) -> Coercer:
    """The function that turns JSON values into `dtype` the way training's coercion did."""
    if dtype in _COERCERS:
        return _COERCERS[dtype]
    if dtype.startswith("datetime64"):
        return _datetime(dtype)
    return _fallback(dtype)
