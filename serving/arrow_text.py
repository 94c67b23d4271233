"""Arrow text as a numpy object array with one Python string per distinct value.

Converting an Arrow string column to the object array the scoring core reads
(``to_numpy(zero_copy_only=False)``) makes one Python string per row. A feature column holds
few distinct values, so `text_objects` makes one per distinct value and lets the rows share
it: on a 131,072-row column of five values it takes about a third of the time, and an encoder
that hashes the values afterwards hashes each string once (Python keeps a string's hash). A
column of mostly distinct values gains nothing from sharing and pays for the dictionary (about
three times the plain conversion when every value differs), so when the first
`SAMPLE_ROWS` rows hold more than `MAX_SAMPLE_DISTINCT` values the column is converted row by
row as before.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# Rows from which `text_objects` pays for its dictionary: a request's few rows do not.
MIN_ROWS = 1024
SAMPLE_ROWS, MAX_SAMPLE_DISTINCT = 1024, 256  # more distinct values than this: row by row


def is_text(kind: pa.DataType) -> bool:
    """Whether `text_objects` takes an array of this Arrow type."""
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)


def stored_in_arrow(dtype: Any) -> bool:
    """Whether a pandas dtype keeps its values in Arrow (``string[pyarrow]``, ``str``), so
    that its column is an Arrow array without a conversion."""
    return getattr(dtype, "storage", None) == "pyarrow"


def text_objects(array: pa.Array | pa.ChunkedArray, missing: Any) -> np.ndarray:
    """The values of a string (or large string) array as an object array of `str`, with
    `missing` for nulls: equal, value for value, to ``to_numpy(zero_copy_only=False)`` with
    its None replaced, built from the array's distinct values (row by row when a sample of
    them is mostly distinct)."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if pc.count_distinct(array.slice(0, SAMPLE_ROWS)).as_py() > MAX_SAMPLE_DISTINCT:
        values = np.asarray(array.to_numpy(zero_copy_only=False), dtype=object)
        if missing is not None and array.null_count:
            values[array.is_null().to_numpy(zero_copy_only=False)] = missing
        return values
    encoded = pc.dictionary_encode(array)
    distinct = len(encoded.dictionary)
    table = np.empty(distinct + 1, dtype=object)
    table[:distinct] = encoded.dictionary.to_numpy(zero_copy_only=False)
    table[distinct] = missing
    return table.take(encoded.indices.fill_null(distinct).to_numpy(zero_copy_only=False))
