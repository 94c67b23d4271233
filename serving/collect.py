"""Inference data collection: what each request sent and got back, as Parquet, off the hot path.

A request only appends references to its (already converted) input columns and predictions to
an in-memory queue; a background thread writes batches every ``flush_rows`` rows or
``flush_s`` seconds, and at shutdown. Files are partitioned by UTC date, one file per model
version in each batch (so every file has one schema)::

    <url>/<endpoint>/date=YYYY-MM-DD/part-<HHMMSSffffff>-<uuid>.parquet

Columns: the features, then ``prediction``, ``deployment``, ``model_name``, ``model_version``,
``scored_at`` (UTC) and ``request_id``.

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
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from serving.storage import open_fs

logger = logging.getLogger(__name__)

# Output and context columns written next to the features.
META_COLUMNS = (
    "prediction", "deployment", "model_name", "model_version", "scored_at", "request_id"
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

    @property
    def rows(self) -> int:
        return len(self.predictions)


def _concat(parts: list[Any]) -> Any:
    """Join one column's arrays: numpy or pandas extension arrays of one dtype."""
    if isinstance(parts[0], np.ndarray):
        return np.concatenate(parts)
    return type(parts[0])._concat_same_type(parts)


def _context(records: list[Record]) -> dict[str, Any]:
    """Predictions and request context, one value per input row."""
    counts = [r.rows for r in records]

    def repeat(values: list[str]) -> np.ndarray:
        return np.repeat(np.array(values, dtype=object), counts)

    stamps = np.array([r.scored_at.replace(tzinfo=None) for r in records], dtype="datetime64[us]")
    return {
        "prediction": np.concatenate([r.predictions for r in records]),
        "deployment": repeat([r.deployment for r in records]),
        "model_name": repeat([r.model_name for r in records]),
        "model_version": repeat([r.model_version for r in records]),
        "scored_at": pd.DatetimeIndex(np.repeat(stamps, counts)).tz_localize("UTC"),
        "request_id": repeat([r.request_id for r in records]),
    }


def batch_table(records: list[Record]) -> pa.Table:
    """Inputs, predictions and context of requests scored by one model version, as one table.

    Built column by column with numpy and Arrow rather than by concatenating one small
    DataFrame per request (20-50x cheaper): this runs next to the request path and holds the
    GIL. The pandas schema of a one-row sample is attached, so reading the file back gives the
    training dtypes (``Int64``, ``boolean``, ``str``...). A context column whose name a feature
    already uses gets a leading underscore, so no input column is ever overwritten.
    """
    columns = {
        name: _concat([r.columns[name] for r in records]) for name in records[0].columns
    }
    for name, values in _context(records).items():
        column = name
        while column in columns:
            column = f"_{column}"
        columns[column] = values
    sample = pd.DataFrame({name: values[:1] for name, values in columns.items()})
    schema = pa.Schema.from_pandas(sample, preserve_index=False)
    arrays = [pa.array(columns[field.name], type=field.type) for field in schema]
    return pa.Table.from_arrays(arrays, schema=schema)


class InferenceCollector:
    """A bounded queue of scored requests and the thread that writes them out."""

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
        self.url = url.rstrip("/")
        self.endpoint_name = endpoint_name
        self.flush_rows = flush_rows
        self.flush_s = flush_s
        self.max_rows = max_rows
        self._storage_options = storage_options
        self._queue: deque[Record] = deque()
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
        self._thread = threading.Thread(target=self._run, name="inference-collector", daemon=True)
        self._thread.start()

    def add(self, record: Record) -> None:
        """Queue one request's rows; drops the oldest requests when the queue is full."""
        with self._lock:
            self._queue.append(record)
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

    def _take(self) -> list[Record]:
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
        records = self._take()
        groups: dict[tuple[str, str, str], list[Record]] = {}
        for record in records:
            key = (record.scored_at.strftime("%Y-%m-%d"), record.model_name, record.model_version)
            groups.setdefault(key, []).append(record)
        for (day, *_), group in groups.items():
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
