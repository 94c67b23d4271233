"""Azure ML request shapes: a decoded body becomes a `RawTable` of columns by name.

Accepted, in the local endpoint and the Azure ML entry script alike:

- ``{"input_data": {column: [values]}}`` (columnar);
- ``{"input_data": {"columns": [...], "index": [...], "data": [[...]]}}`` (pandas' split form);
- a list of records ``[{column: value}, ...]``, bare or as ``{"input_data": [...]}`` or
  ``{"data": [...]}``.

Columns are read lazily, so a column the model does not use is never converted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from serving.errors import ScoringInputError

Column = Sequence[Any]

_SPLIT_KEYS = frozenset({"columns", "index", "data"})


def parse_json(body: bytes | str) -> Any:
    """Decode a request body, turning a decoding failure into a 400."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ScoringInputError(400, f"request body is not valid JSON: {exc}") from exc


@dataclass(frozen=True)
class RawTable:
    """The columns a request sent, read lazily so unused columns are never converted."""

    names: tuple[str, ...]
    n_rows: int
    column: Callable[[str], Column]


def _records_table(records: list[Any]) -> RawTable:
    if not all(isinstance(r, dict) for r in records):
        raise ScoringInputError(400, "a list of records must hold JSON objects only")
    names: dict[str, None] = {}
    for record in records:
        names.update(dict.fromkeys(record))
    return RawTable(
        tuple(names), len(records), lambda name: [r.get(name) for r in records]
    )


def _split_table(split: dict[str, Any]) -> RawTable:
    columns, rows = split.get("columns"), split.get("data")
    if not isinstance(columns, list) or not isinstance(rows, list):
        raise ScoringInputError(400, "the split form needs 'columns' and 'data' lists")
    width = len(columns)
    if not all(isinstance(row, list) and len(row) == width for row in rows):
        raise ScoringInputError(
            400, f"every row of 'data' must be a list of {width} values, one per column"
        )
    position = {str(name): i for i, name in enumerate(columns)}
    by_column = list(zip(*rows, strict=True))  # one pass in C instead of one per column
    return RawTable(tuple(position), len(rows), lambda name: by_column[position[name]])


def _columnar_table(data: dict[str, Any]) -> RawTable:
    if not all(isinstance(v, list) for v in data.values()):
        raise ScoringInputError(400, "in the columnar form every column must be a list of values")
    lengths = {name: len(values) for name, values in data.items()}
    if len(set(lengths.values())) > 1:
        raise ScoringInputError(400, f"columns have different lengths: {lengths}")
    n_rows = next(iter(lengths.values()), 0)
    return RawTable(tuple(data), n_rows, data.__getitem__)


def _is_split(data: dict[str, Any]) -> bool:
    return "columns" in data and "data" in data and set(data) <= _SPLIT_KEYS


def raw_table(payload: Any) -> RawTable:
    """Recognise the request shape and expose its columns by name.

    Raises:
        ScoringInputError: 400 when the body is none of the accepted shapes.
    """
    if isinstance(payload, list):
        return _records_table(payload)
    if not isinstance(payload, dict):
        raise ScoringInputError(
            400, "expected a JSON object with 'input_data' or a list of records"
        )
    if "input_data" in payload:
        data = payload["input_data"]
    elif "data" in payload:
        data = payload["data"]
    else:
        raise ScoringInputError(
            400, "expected 'input_data' (columnar or split form) or a list of records"
        )
    if isinstance(data, list):
        return _records_table(data)
    if isinstance(data, dict):
        return _split_table(data) if _is_split(data) else _columnar_table(data)
    raise ScoringInputError(400, "'input_data' must be an object of columns or a list of records")


def wants_probabilities(payload: Any, query_flag: bool = False) -> bool:
    """Whether the caller asked for class probabilities (body flag or query parameter)."""
    flag = payload.get("return_probabilities", False) if isinstance(payload, dict) else False
    if not isinstance(flag, bool):
        raise ScoringInputError(400, "'return_probabilities' must be true or false")
    return flag or query_flag
