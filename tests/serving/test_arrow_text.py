"""serving/arrow_text.py and the readers that use it: a batch's text as one Python string per
distinct value, equal value for value to Arrow's and pandas' own conversions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from mlops.batch.arrow_input import column_values
from serving.arrow_text import MIN_ROWS, text_objects
from serving.fastpath.readers import text_reader

VALUES = ["north", None, "süd", "", "north", "east ", None, "NORTH"]
DISTINCT = [f"id-{i}" if i % 7 else None for i in range(3 * MIN_ROWS)]  # mostly distinct


def _rows(values: list, n: int) -> list:
    """`values` repeated to `n` rows."""
    return (values * (n // len(values) + 1))[:n]


def _same(got: np.ndarray, want: np.ndarray) -> bool:
    """Equal value for value, and of the same type (a float NaN only where NaN is wanted)."""
    return got.dtype == want.dtype == object and len(got) == len(want) and all(
        (type(g) is type(w) and (g == w or (g != g and w != w))) for g, w in zip(got, want,
                                                                                 strict=True))


@pytest.mark.parametrize("kind", [pa.string(), pa.large_string()])
@pytest.mark.parametrize("values", [VALUES * 300, DISTINCT, [None] * 50, [], ["only"] * 7],
                         ids=["mixed", "mostly-distinct", "all-null", "empty", "one-value"])
def test_text_objects_equal_arrows_conversion(kind, values):
    array = pa.array(values, type=kind)
    assert _same(text_objects(array, None), array.to_numpy(zero_copy_only=False))
    chunked = pa.chunked_array([array.slice(0, len(values) // 2),
                                array.slice(len(values) // 2)], type=kind)
    want = np.array([np.nan if v is None else v for v in values], dtype=object)
    assert _same(text_objects(chunked, np.nan), want)


def test_rows_share_one_string_per_distinct_value_unless_most_values_differ():
    got = text_objects(pa.array(VALUES * 300), np.nan)
    assert len({id(v) for v in got}) == len(set(VALUES))  # the None in VALUES is NaN here
    many = [f"city-{i % 600}" for i in range(3 * MIN_ROWS)]  # 600 in the first 1,024 rows
    got = text_objects(pa.array(many), None)
    assert len({id(v) for v in got}) == len(many)  # converted row by row


@pytest.mark.parametrize("rows", [MIN_ROWS - 1, MIN_ROWS, 5 * MIN_ROWS])
def test_a_batch_columns_text_is_what_a_request_would_carry(rows):
    values = _rows(VALUES, rows)
    got = column_values(pa.array(values))
    assert _same(got, np.array(values, dtype=object))
    dictionary = pa.array(values).dictionary_encode()
    assert _same(column_values(dictionary), np.array(values, dtype=object))


@pytest.mark.parametrize("dtype", ["str", "string", "object", "category"])
@pytest.mark.parametrize("rows", [MIN_ROWS - 1, 3 * MIN_ROWS])
@pytest.mark.parametrize("values", [VALUES, DISTINCT], ids=["few", "mostly-distinct"])
def test_the_text_reader_equals_pandas_conversion(dtype, rows, values):
    column = pd.array(_rows(values, rows), dtype=dtype)
    want = np.asarray(column.to_numpy(dtype=object, na_value=np.nan))
    assert _same(text_reader(dtype, cast=dtype == "string")(column), want)


@pytest.mark.parametrize("rows", [3, 3 * MIN_ROWS])
def test_booleans_read_as_text_equal_numpys_strings(rows):
    flags = np.resize(np.array([True, False, False]), rows)
    assert _same(text_reader("bool", cast=True)(flags),
                 np.where(flags, "True", "False").astype(object))
    nullable = pd.array(np.resize(np.array([True, None, False], dtype=object), rows),
                        dtype="boolean")
    want = np.where(nullable.to_numpy(dtype=bool, na_value=False), "True", "False").astype(object)
    want[nullable.isna()] = np.nan
    assert _same(text_reader("boolean", cast=True)(nullable), want)
