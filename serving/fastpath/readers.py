"""Readers: one coerced column -> what its branch's first step receives.

Float64 with NaN for missing, or an object array of ``str`` with NaN, converted as
scikit-learn's check_array (no cast) or `serving.transforms` (a cast) would. A batch's text
column (stored in Arrow, `serving.arrow_text.MIN_ROWS` rows or more) becomes one Python string per
distinct value, shared by its rows; booleans as text share the strings "True" and "False".
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from serving.arrow_text import MIN_ROWS, is_text, stored_in_arrow, text_objects
from serving.fastpath.common import Reader, Unsupported

_NANOSECONDS_PER_DAY = 86_400 * 10**9
_FALSE_TRUE = np.array(["False", "True"], dtype=object)
PLAIN_NUMERIC = frozenset({"float64", "int64", "int32"})
PLAIN_TEXT = frozenset({"str", "category", "object"})


def _as_float64(array: Any) -> np.ndarray:
    return np.asarray(array).astype(np.float64)


def _masked_floats(array: Any) -> np.ndarray:
    return array.to_numpy(dtype=np.float64, na_value=np.nan)


def _datetime_days(array: Any) -> np.ndarray:
    """As `serving.transforms.to_float_array`: days since 1970, NaN for missing."""
    stamps = np.asarray(array, dtype="datetime64[ns]")
    missing = np.isnat(stamps)
    days = np.where(missing, 0, stamps.view(np.int64)) / _NANOSECONDS_PER_DAY
    return np.where(missing, np.nan, days)


def float_reader(dtype: str, cast: bool) -> Reader:
    """Column of `dtype` -> float64, as check_array (``cast=False``) or `to_float_array` does.

    Raises:
        Unsupported: a dtype whose conversion here might differ from scikit-learn's.
    """
    if dtype == "float64":
        return np.asarray
    if dtype in PLAIN_NUMERIC or (cast and dtype in ("float32", "bool")):
        return _as_float64
    if cast and dtype in ("Int64", "Float64", "boolean"):
        return _masked_floats
    if cast and dtype == "datetime64[ns]":
        return _datetime_days
    raise Unsupported(f"no float reader for a {dtype} column (cast: {cast})")


def _text_values(array: Any) -> np.ndarray:
    if len(array) >= MIN_ROWS and stored_in_arrow(array.dtype):
        values = pa.array(array)  # the column's own Arrow data: no conversion
        if is_text(values.type):
            return text_objects(values, np.nan)
    return array.to_numpy(dtype=object, na_value=np.nan)


def _bool_text(array: Any) -> np.ndarray:
    return _FALSE_TRUE.take(np.asarray(array, dtype=bool).view(np.uint8))


def _boolean_text(array: Any) -> np.ndarray:
    out = _FALSE_TRUE.take(array.to_numpy(dtype=bool, na_value=False).view(np.uint8))
    out[array.isna()] = np.nan
    return out


def text_reader(dtype: str, cast: bool) -> Reader:
    """Column of `dtype` -> object array of `str` with NaN for missing, as encoders get it.

    Raises:
        Unsupported: a dtype whose conversion here might differ from scikit-learn's.
    """
    if dtype in PLAIN_TEXT or (cast and dtype == "string"):
        return _text_values
    if cast and dtype == "bool":
        return _bool_text
    if cast and dtype == "boolean":
        return _boolean_text
    raise Unsupported(f"no text reader for a {dtype} column (cast: {cast})")
