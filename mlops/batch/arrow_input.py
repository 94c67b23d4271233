"""An Arrow record batch as the scoring core's `RawTable`: the values a request would carry.

The endpoint's coercers (`serving.coercion`) take a column's values and convert them to the
dtype the model was trained with. Here each Arrow column becomes the numpy array those
coercers read as they read a JSON list: numbers as numbers (an integer column with nulls as
float64 with NaN, as JSON nulls read), text as an object array of `str` and `None`, booleans
with nulls as objects, date-times as ISO 8601 text. One conversion per column, in C; a column
the model does not use is never converted. A text column of a batch becomes one Python string
per distinct value, shared by its rows (`serving.arrow_text`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from serving.arrow_text import MIN_ROWS, is_text, text_objects
from serving.request_shapes import RawTable


def column_values(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """The column as the coercers take it (see the module docstring)."""
    kind = array.type
    if pa.types.is_dictionary(kind):
        array = array.cast(kind.value_type)
        kind = array.type
    if pa.types.is_temporal(kind):
        array = array.cast(pa.string())
    if len(array) >= MIN_ROWS and is_text(kind):
        return text_objects(array, None)
    return np.asarray(array.to_numpy(zero_copy_only=False))


def raw_table(batch: pa.RecordBatch) -> RawTable:
    """The batch's columns by name, converted when the scoring core asks for one."""
    converted: dict[str, Any] = {}

    def column(name: str) -> np.ndarray:
        if name not in converted:
            converted[name] = column_values(batch.column(name))
        return converted[name]

    return RawTable(tuple(batch.schema.names), batch.num_rows, column)
