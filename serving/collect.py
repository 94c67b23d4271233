"""Inference data collection: what each request sent and got back, as Parquet, off the hot path.

A request only appends its (already converted) input columns and predictions to an in-memory
queue, small requests as tuples of plain values and larger ones as references to their arrays
(see `Queued`); a background thread writes batches every ``flush_rows`` rows or ``flush_s``
seconds, and at shutdown. Files are partitioned by UTC date, one file per model
version in each batch (so every file has one schema)::

    <url>/<endpoint>/date=YYYY-MM-DD/part-<HHMMSSffffff>-<uuid>.parquet

Columns: the features, then ``prediction``, ``deployment``, ``model_name``, ``model_version``,
``scored_at`` (UTC), ``request_id`` and ``mirrored`` (true for a mirror traffic copy, whose
answer nobody received: ``serving.mirror``).

Input columns keep their feature names (and training dtypes), so the drift check can read them
next to the bundle's reference sample. Memory is bounded: beyond ``max_rows`` queued rows the
oldest requests are dropped and counted. Each file appears whole (written under a temporary
name and renamed on local disks), so a crash loses at most the batch being collected.
"""

from __future__ import annotations

import io
import logging
import threading
import uuid
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import chain
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from serving.storage import open_fs

logger = logging.getLogger(__name__)

# Output and context columns written next to the features.
META_COLUMNS = (
    "prediction", "deployment", "model_name", "model_version", "scored_at", "request_id",
    "mirrored",
)


@dataclass(frozen=True)
class Record:
    """One scored request, as queued: its input columns (feature name -> array, as the model
    got them) and its predictions."""

    columns: dict[str, Any]
    predictions: np.ndarray
    deployment: str
    model_name: str
    model_version: str
    request_id: str
    scored_at: datetime
    mirrored: bool = False

    @property
    def rows(self) -> int:
        return len(self.predictions)


# Requests up to this many rows are queued as Python lists (see `Queued`); larger ones keep
# their arrays, whose per-array cost is small against their rows.
LIST_ROWS = 16
_VALUES, _ARRAYS, _BOTH = "values", "arrays", "both"
_MICROS_PER_DAY = 86_400 * 10**6
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Queued:
    """A record as the queue holds it: each column's values in feature order, small requests
    as plain lists.

    A batch of thousands of one-row requests is then joined with one pass per column and
    one array build, instead of concatenating tens of thousands of one-value arrays. That work
    runs on the collector thread but holds the GIL, and the requests that arrive meanwhile
    wait for it: a flush of 5000 one-row requests of 20 columns took 45 ms, now about 20.
    Tuples of numbers and text, unlike lists, drop out of the garbage collector's tracking, so
    the queue does not make its collections longer either.
    """

    names: tuple[str, ...]
    dtypes: tuple[tuple[bool, Any], ...]  # (a numpy array?, dtype) per column
    values: tuple[Any, ...]
    predictions: Any
    prediction_dtype: Any
    deployment: str
    model_name: str
    model_version: str
    request_id: str
    micros: int  # scored_at, microseconds since 1970 (UTC)
    rows: int
    mirrored: bool

    @classmethod
    def of(cls, record: Record) -> Queued:
        small = record.rows <= LIST_ROWS
        columns = record.columns.values()
        return cls(
            tuple(record.columns),
            tuple((isinstance(c, np.ndarray), c.dtype) for c in columns),
            tuple(tuple(c.tolist()) for c in columns) if small else tuple(columns),
            tuple(record.predictions.tolist()) if small else record.predictions,
            record.predictions.dtype, record.deployment, record.model_name,
            record.model_version, record.request_id,
            (record.scored_at - _EPOCH) // timedelta(microseconds=1), record.rows,
            record.mirrored,
        )

    @property
    def day(self) -> int:
        return self.micros // _MICROS_PER_DAY


def _join(parts: Sequence[Any], kind: tuple[bool, Any], shape: str) -> Any:
    """One column of a batch, rebuilt as the array type and dtype the scoring core gave it.

    `shape` says what the parts are: all tuples of values (small requests), all arrays
    (large ones, joined as arrays), or both (the arrays are turned into values first).
    """
    is_numpy, dtype = kind
    if shape == _ARRAYS:
        return np.concatenate(parts) if is_numpy else type(parts[0])._concat_same_type(parts)
    if shape == _VALUES:
        values = list(chain.from_iterable(parts))
    else:
        values = list(chain.from_iterable(p if type(p) is tuple else p.tolist() for p in parts))
    if not is_numpy:
        return pd.array(values, dtype=dtype)
    # numpy text columns take the longest value's width, as a concatenation would
    return np.array(values, dtype=None if dtype.kind in "US" else dtype)


def _shape(queued: list[Queued]) -> str:
    small = [q.rows <= LIST_ROWS for q in queued]
    return _VALUES if all(small) else _ARRAYS if not any(small) else _BOTH


def _context(queued: list[Queued], shape: str) -> dict[str, Any]:
    """Predictions and request context, one value per input row."""
    counts = [q.rows for q in queued]

    def repeat(values: list[str]) -> np.ndarray:
        return np.repeat(np.array(values, dtype=object), counts)

    micros = np.repeat(np.array([q.micros for q in queued], dtype=np.int64), counts)
    return {
        "prediction": _join([q.predictions for q in queued], (True, queued[0].prediction_dtype),
                            shape),
        "deployment": repeat([q.deployment for q in queued]),
        "model_name": repeat([q.model_name for q in queued]),
        "model_version": repeat([q.model_version for q in queued]),
        "scored_at": pd.DatetimeIndex(micros.view("datetime64[us]")).tz_localize("UTC"),
        "request_id": repeat([q.request_id for q in queued]),
        "mirrored": np.repeat(np.array([q.mirrored for q in queued], dtype=bool), counts),
    }


def batch_table(queued: list[Queued]) -> pa.Table:
    """Inputs, predictions and context of requests scored by one model version, as one table.

    Built column by column with numpy and Arrow rather than one small DataFrame per request
    (this runs next to the request path and holds the GIL). The pandas schema of a one-row
    sample is attached, so reading the file back gives the training dtypes (``Int64``,
    ``boolean``, ``str``...). A context column whose name a feature already uses gets a
    leading underscore, so no input column is ever overwritten.
    """
    first, shape = queued[0], _shape(queued)
    parts = zip(*(q.values for q in queued), strict=True)  # one pass for all columns
    columns = {
        name: _join(column, kind, shape)
        for name, kind, column in zip(first.names, first.dtypes, parts, strict=True)
    }
    for name, values in _context(queued, shape).items():
        column = name
        while column in columns:
            column = f"_{column}"
        columns[column] = values
    schema = _schema(columns)
    arrays = [pa.array(columns[field.name], type=field.type) for field in schema]
    return pa.Table.from_arrays(arrays, schema=schema)


_SCHEMAS: dict[tuple[tuple[str, str], ...], pa.Schema] = {}


def _schema(columns: dict[str, Any]) -> pa.Schema:
    """The Arrow schema, with pandas metadata, of a one-row sample of these columns; kept per
    set of names and dtypes (building it is half of a batch of a few thousand rows)."""
    key = tuple((name, str(values.dtype)) for name, values in columns.items())
    schema = _SCHEMAS.get(key)
    if schema is None:
        sample = pd.DataFrame({name: values[:1] for name, values in columns.items()})
        schema = pa.Schema.from_pandas(sample, preserve_index=False)
        if len(_SCHEMAS) >= 64:
            _SCHEMAS.clear()
        _SCHEMAS[key] = schema
    return schema


class QueuedCollector:
    """A bounded queue of scored requests and the thread that hands them, in batches of one
    date and model version (`batch_table`), to `_write`; subclasses say where they go."""

    def __init__(
        self, *, flush_rows: int = 5000, flush_s: float = 5.0, max_rows: int = 200_000
    ) -> None:
        self.flush_rows = flush_rows
        self.flush_s = flush_s
        self.max_rows = max_rows
        self._queue: deque[Queued] = deque()
        self._queued_rows = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.dropped_rows = 0
        self.written_rows = 0
        self.failed_batches = 0
        self._dropped_logged = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=type(self).__name__, daemon=True)
        self._thread.start()

    def add(self, record: Record) -> None:
        """Queue one request's rows; drops the oldest requests when the queue is full."""
        queued = Queued.of(record)
        with self._lock:
            self._queue.append(queued)
            self._queued_rows += record.rows
            while self._queued_rows > self.max_rows and self._queue:
                old = self._queue.popleft()
                self._queued_rows -= old.rows
                self.dropped_rows += old.rows
            full = self._queued_rows >= self.flush_rows
        if full:
            self._wake.set()

    def stats(self) -> dict[str, int]:
        return {
            "queued_rows": self._queued_rows,
            "written_rows": self.written_rows,
            "dropped_rows": self.dropped_rows,
            "failed_batches": self.failed_batches,
        }

    def close(self, timeout_s: float = 30.0) -> None:
        """Stop the thread after it has written everything still queued."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        self.flush()

    def _take(self) -> list[Queued]:
        with self._lock:
            records = list(self._queue)
            self._queue.clear()
            self._queued_rows = 0
        return records

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_s)
            self._wake.clear()
            self.flush()

    def flush(self) -> None:
        """Write what is queued now, one file per date and model version.

        A failed write is logged and counted rather than raised: it runs on a background
        thread, and losing one batch of logs must not stop the endpoint from serving.
        """
        self._log_drops()
        groups: dict[tuple[int, str, str], list[Queued]] = {}
        for queued in self._take():
            key = (queued.day, queued.model_name, queued.model_version)
            groups.setdefault(key, []).append(queued)
        for (day_number, *_), group in groups.items():
            day = (_EPOCH + timedelta(days=day_number)).strftime("%Y-%m-%d")
            try:
                self._write(day, batch_table(group))
            except Exception:  # noqa: BLE001 - see docstring; counted in stats()
                self.failed_batches += 1
                logger.exception(
                    "Could not write %s inference rows for %s", sum(r.rows for r in group), day
                )

    def _log_drops(self) -> None:
        if self.dropped_rows > self._dropped_logged:
            logger.warning(
                "Inference queue full: dropped %s rows (total %s); raise "
                "MLOPS_ENDPOINT_COLLECT_QUEUE_ROWS or lower the flush interval",
                self.dropped_rows - self._dropped_logged, self.dropped_rows,
            )
            self._dropped_logged = self.dropped_rows

    def _write(self, day: str, table: pa.Table) -> None:
        raise NotImplementedError


class InferenceCollector(QueuedCollector):
    """Batches as Parquet files under ``<url>/<endpoint>/date=YYYY-MM-DD/``."""

    def __init__(
        self,
        url: str,
        endpoint_name: str,
        *,
        flush_rows: int = 5000,
        flush_s: float = 5.0,
        max_rows: int = 200_000,
        storage_options: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(flush_rows=flush_rows, flush_s=flush_s, max_rows=max_rows)
        self.url = url.rstrip("/")
        self.endpoint_name = endpoint_name
        self._storage_options = storage_options

    def _write(self, day: str, table: pa.Table) -> None:
        fs, root = open_fs(self.url, self._storage_options)
        folder = f"{root}/{self.endpoint_name}/date={day}"
        name = f"part-{datetime.now(UTC):%H%M%S%f}-{uuid.uuid4().hex[:12]}.parquet"
        buffer = io.BytesIO()
        pq.write_table(table, buffer)
        fs.makedirs(folder, exist_ok=True)
        if "file" in fs.protocol or "local" in fs.protocol:
            fs.pipe_file(f"{folder}/.{name}.tmp", buffer.getvalue())
            fs.mv(f"{folder}/.{name}.tmp", f"{folder}/{name}")
        else:
            fs.pipe_file(f"{folder}/{name}", buffer.getvalue())
        self.written_rows += table.num_rows
        logger.debug("Wrote %s inference rows to %s/%s", table.num_rows, folder, name)
