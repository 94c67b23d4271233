"""The scoring core: Azure ML request shapes in, predictions out, typed errors for bad input.

Both the local endpoint (``serving.server``) and the Azure ML entry script
(``deployments/azureml/score.py``) call this module, so a request means the same thing in both
places. It accepts:

- ``{"input_data": {column: [values]}}`` (columnar);
- ``{"input_data": {"columns": [...], "index": [...], "data": [[...]]}}`` (pandas' split form);
- a list of records ``[{column: value}, ...]``, bare or as ``{"input_data": [...]}`` or
  ``{"data": [...]}``.

Columns are matched to the bundle's features ignoring case and separators, put in the order
the model was trained with, and converted to the dtype the manifest records, so the pipeline
sees exactly what it saw in training. Extra columns are ignored.

Speed matters here (one call per request): columns are built with numpy where the dtype
allows, pandas extension arrays otherwise, and no per-request validation model is built.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa

from serving.bundle import Bundle

if TYPE_CHECKING:
    from serving.fastpath import FastPipeline

logger = logging.getLogger(__name__)

Column = Sequence[Any]
Coercer = Callable[[Column], Any]

_SEPARATORS = re.compile(r"[\s_\-.]+")
_TRUE = frozenset({"true", "t", "yes", "y", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "0"})
_SPLIT_KEYS = frozenset({"columns", "index", "data"})
_MATCHES_KEPT = 64
_MATCH_NAMES_KEPT = 64  # beyond the model's own features
_MATCH_CHARS_KEPT = 16_384


class ScoringInputError(Exception):
    """The request cannot be scored; `status` is the HTTP status that says why.

    400 for a body that is not a request at all (not JSON, an unknown shape), 422 for a
    well-formed request whose content does not fit the model (missing columns, values that
    cannot become the trained dtype, no rows).
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def normalize_name(name: object) -> str:
    """Column key that ignores case and separators ('Period ID' == 'period_id').

    The same rule as ``mlops.spec.normalize_name``; repeated here because ``serving`` must not
    import ``mlops``.
    """
    return _SEPARATORS.sub("", str(name)).lower()


def parse_json(body: bytes | str) -> Any:
    """Decode a request body, turning a decoding failure into a 400."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise ScoringInputError(400, f"request body is not valid JSON: {exc}") from exc


# --- request shapes -----------------------------------------------------------------------


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


# --- dtype conversion ---------------------------------------------------------------------


class _Uncoercible(ValueError):
    """A column's values cannot become its trained dtype; the message says why."""


def _flat(array: np.ndarray) -> np.ndarray:
    if array.ndim != 1:
        raise _Uncoercible("expected one value per row, got nested lists")
    return array


def _array(values: Column) -> np.ndarray:
    """The values as one numpy array; lists of different lengths (``[[1], [1, 2]]``) and
    values numpy cannot hold are the client's error, not ours."""
    try:
        return _flat(np.asarray(values))
    except (TypeError, ValueError, OverflowError) as exc:
        raise _Uncoercible("expected one value per row, got nested lists") from exc


def _as_float(values: Column) -> np.ndarray:
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError, OverflowError) as exc:
        raise _Uncoercible(f"expected numbers ({exc})") from exc
    return _flat(array)


def _float32(values: Column) -> np.ndarray:
    floats = _as_float(values)
    too_large = np.abs(floats) > np.finfo(np.float32).max
    if too_large.any() and np.isfinite(floats[too_large]).any():
        raise _Uncoercible(f"{_first(floats, too_large)} is beyond the float32 range")
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
        raise _Uncoercible(
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
        raise _Uncoercible("expected whole numbers")
    info = np.iinfo(dtype)
    # Bounds one past each end, in float64: for int64 both round to +-2**63 itself, which
    # is refused too (JSON integers beyond int64 reach us as floats rounded to 2**63).
    outside = (present <= float(info.min) - 1) | (present >= float(info.max) + 1)
    if outside.any():
        raise _Uncoercible(
            f"{_first(present, outside)} is outside the {np.dtype(dtype).name} range "
            f"[{info.min}, {info.max}]"
        )
    return np.where(missing, 0, floats).astype(dtype), missing


def _int64(values: Column, dtype: type[np.integer] = np.int64) -> np.ndarray:
    ints, missing = _integral(values, dtype)
    if missing.any():
        raise _Uncoercible("holds nulls, but the model was trained without missing values here")
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
    raise _Uncoercible(f"expected true/false, got {value!r}")


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
        raise _Uncoercible("holds nulls, but the model was trained without missing values here")
    return result.to_numpy(dtype=bool)


def _text(dtype: str) -> Coercer:
    resolved = pd.api.types.pandas_dtype(dtype)  # once, not per request
    on_arrow = getattr(resolved, "storage", None) == "pyarrow"

    def coerce(values: Column) -> Any:
        if on_arrow and all(type(v) is str or v is None for v in values):
            # The array pd.array builds from text and nulls, without its conversion pass
            # over every value (half the cost of a one-row column).
            return pd.arrays.ArrowStringArray(pa.array(values, type=pa.large_string()),
                                              dtype=resolved)
        if any(isinstance(v, list | dict) for v in values):
            raise _Uncoercible("expected text, got a list or an object")
        return pd.array(values, dtype=resolved)

    return coerce


def _datetime(dtype: str) -> Coercer:
    target = pd.api.types.pandas_dtype(dtype)
    tz = getattr(target, "tz", None)

    def coerce(values: Column) -> Any:
        if any(isinstance(v, list | dict | bool) for v in values):
            raise _Uncoercible("expected ISO 8601 date-times")
        try:
            stamps = pd.to_datetime(list(values), format="ISO8601", utc=True)
        except (TypeError, ValueError, OverflowError) as exc:
            raise _Uncoercible(f"expected ISO 8601 date-times ({exc})") from exc
        stamps = stamps.tz_convert(tz) if tz is not None else stamps.tz_localize(None)
        return stamps.astype(target).array

    return coerce


def _fallback(dtype: str) -> Coercer:
    def coerce(values: Column) -> Any:
        try:
            return pd.array(values, dtype=dtype)
        except (TypeError, ValueError, OverflowError) as exc:
            raise _Uncoercible(str(exc)) from exc

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


# --- scoring ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scored:
    """One request's outcome: the model's input columns (training dtypes, kept for inference
    collection) and its outputs."""

    columns: dict[str, Any]
    predictions: np.ndarray
    probabilities: np.ndarray | None = None
    classes: list[Any] | None = None

    @property
    def frame(self) -> pd.DataFrame:
        """The input columns as the DataFrame the plain pipeline gets (built on demand)."""
        return pd.DataFrame(self.columns, copy=False)

    def body(self) -> dict[str, Any]:
        """The prediction part of the response, as plain JSON-able values."""
        out: dict[str, Any] = {"predictions": self.predictions.tolist()}
        if self.probabilities is not None:
            out["probabilities"] = self.probabilities.tolist()
            out["classes"] = self.classes
        return out


class Scorer:
    """A loaded bundle with its column plan worked out once, so each request only converts."""

    def __init__(self, bundle: Bundle, fast: bool = True) -> None:
        """Work out the column plan and, if `fast`, the lean predict path (see
        `serving.fastpath`), which is kept only if it answers probe rows exactly as the
        plain pipeline does."""
        self.bundle = bundle
        self.features = bundle.feature_names
        self._keys = [normalize_name(name) for name in self.features]
        self._coercers = [coercer_for(f.dtype) for f in bundle.features]
        self._dtypes = [f.dtype for f in bundle.features]
        self._matches: dict[tuple[str, ...], list[str]] = {}
        self.classes: list[Any] | None = (
            np.asarray(bundle.model.classes_).tolist()
            if hasattr(bundle.model, "classes_") and hasattr(bundle.model, "predict_proba")
            else None
        )
        self.fast: FastPipeline | None = None
        self.plain_reason: str | None = "switched off"
        if fast:
            self.fast = self._compile_fast()

    @property
    def path(self) -> str:
        """How requests are scored, for the control API: the fast path or why not."""
        return "fast path" if self.fast is not None else f"plain pipeline ({self.plain_reason})"

    def _compile_fast(self) -> FastPipeline | None:
        from serving import fastpath  # noqa: PLC0415 - imports scikit-learn parts

        bundle = self.bundle
        try:
            compiled = fastpath.compile_pipeline(bundle.model, self.features, self._dtypes)
            self._probe(compiled)
        except fastpath.Unsupported as exc:
            self.plain_reason = str(exc)
            logger.info("%s version %s scores through the plain pipeline: %s",
                        bundle.manifest.get("model_name"), bundle.manifest.get("version"), exc)
            return None
        self.plain_reason = None
        return compiled

    def _probe(self, compiled: FastPipeline) -> None:
        """Compare the compiled path with the plain pipeline on seeded probe rows (a few
        milliseconds at load time): a mismatch keeps the plain pipeline for this model.

        Clean probes hold only known categories and no nulls, so both paths must answer
        them; rough ones add unseen categories and nulls, which either path may refuse.

        Raises:
            Unsupported: the answers differ, or the probe rows could not be built or compared.
        """
        from threadpoolctl import threadpool_limits  # noqa: PLC0415

        from serving import fastpath  # noqa: PLC0415

        # One OpenMP thread for this (loading) thread only: the plain pipeline's small
        # predictions take seconds with spinning workers on a busy machine.
        with threadpool_limits(1, user_api="openmp"):
            compared = [
                self._probe_rows(compiled, n_rows, rough)
                for n_rows, rough in ((1, False), (9, True), (fastpath.WALK_MAX_ROWS + 3, False),
                                      (2 * fastpath.WALK_MAX_ROWS + 3, True))
            ]
        if not any(compared):
            raise fastpath.Unsupported("no probe rows could be compared")

    def _probe_rows(self, compiled: FastPipeline, n_rows: int, rough: bool) -> bool:
        from serving import fastpath  # noqa: PLC0415

        rng = np.random.default_rng(n_rows)
        categories = compiled.categories
        values = {
            name: fastpath.probe_values(dtype, n_rows, categories.get(i, ()), rng, rough)
            for i, (name, dtype) in enumerate(zip(self.features, self._dtypes, strict=True))
        }
        try:
            columns = self.columns(RawTable(tuple(values), n_rows, values.__getitem__))
        except ScoringInputError as exc:
            raise fastpath.Unsupported(f"probe rows: {exc.message}") from exc
        asked = self.classes is not None
        try:
            return fastpath.compare(compiled, lambda: self._plain(columns, asked),
                                    list(columns.values()), n_rows, asked)
        except fastpath.Unsupported as exc:
            raise fastpath.Unsupported(f"probe of {n_rows} rows: {exc}") from exc

    def _match(self, table: RawTable) -> list[str]:
        """The request's name for each feature, in feature order; names every missing one.

        Clients send the same columns request after request, so the answer is kept per set of
        names: at most `_MATCHES_KEPT` sets, each of at most `_MATCH_NAMES_KEPT` names and
        `_MATCH_CHARS_KEPT` characters, so requests full of unique extra names are matched
        every time rather than held in memory.
        """
        known = self._matches.get(table.names)
        if known is not None:
            return known
        exact = set(table.names)
        by_key: dict[str, str] = {}
        for name in table.names:
            by_key.setdefault(normalize_name(name), name)
        matched = [
            name if name in exact else by_key.get(key, "")
            for name, key in zip(self.features, self._keys, strict=True)
        ]
        missing = [f for f, m in zip(self.features, matched, strict=True) if not m]
        if missing:
            raise ScoringInputError(422, f"missing required columns: {missing}")
        if len(table.names) <= _MATCH_NAMES_KEPT + len(self.features) and (
            sum(map(len, table.names)) <= _MATCH_CHARS_KEPT
        ):
            if len(self._matches) >= _MATCHES_KEPT:
                self._matches.clear()
            self._matches[table.names] = matched
        return matched

    def frame(self, table: RawTable) -> pd.DataFrame:
        """The model's input: features in training order with training dtypes (see
        `columns`)."""
        return pd.DataFrame(self.columns(table), copy=False)

    def columns(self, table: RawTable) -> dict[str, Any]:
        """The model's input columns, in training order, converted to training dtypes.

        Raises:
            ScoringInputError: 422 for no rows, missing columns (all named) or a column whose
                values cannot take its dtype (named, with the dtype).
        """
        if table.n_rows == 0:
            raise ScoringInputError(422, "no rows to score: the request holds no data")
        columns = {}
        for feature, source, coerce, dtype in zip(
            self.features, self._match(table), self._coercers, self._dtypes, strict=True
        ):
            try:
                columns[feature] = coerce(table.column(source))
            except _Uncoercible as exc:
                raise ScoringInputError(
                    422, f"column '{source}' cannot be read as {dtype}: {exc}"
                ) from exc
        return columns

    def score(self, payload: Any, probabilities: bool = False) -> Scored:
        """Predict for a decoded request body (and class probabilities when asked, by
        `probabilities` or the body's ``return_probabilities``).

        Raises:
            ScoringInputError: the request does not fit the model (see `frame`), or the model
                refused the converted rows (422).
        """
        asked = wants_probabilities(payload, probabilities)
        return self.score_table(raw_table(payload), asked)

    def score_table(self, table: RawTable, probabilities: bool = False) -> Scored:
        """`score` for a request whose shape was already recognised."""
        columns = self.columns(table)
        asked = probabilities and self.classes is not None
        try:
            answer = (
                self.fast.run(list(columns.values()), table.n_rows, asked)
                if self.fast is not None else None
            )
            predictions, proba = answer or self._plain(columns, asked)
        except (TypeError, ValueError) as exc:
            raise ScoringInputError(422, f"the model could not score these rows: {exc}") from exc
        return Scored(columns, predictions, proba, self.classes if asked else None)

    def _plain(self, columns: dict[str, Any], probabilities: bool) -> tuple[Any, Any]:
        """The pipeline itself, on the DataFrame it was trained on."""
        frame = pd.DataFrame(columns, copy=False)
        model = self.bundle.model
        predictions = np.asarray(model.predict(frame))
        proba = np.asarray(model.predict_proba(frame)) if probabilities else None
        return predictions, proba
