"""Stage checkpoints for big tables: Arrow files on local disk, passed around as references.

Prefect persists task results as base64 pickles inside JSON, which for a million-row DataFrame
costs seconds and several transient copies. The data stages instead write their output once
as an uncompressed Arrow (Feather v2) file, named by the stage's cache key, and return a small
`FrameRef`; that reference is what Prefect caches. Readers memory-map the file.

Stages that need not hold the whole table at once stream it: `iter_frames` reads a checkpoint
a batch of rows at a time (without memory-mapping it, so the pages it has read do not stay
resident), `FrameWriter` appends batches to a new checkpoint, and `take_rows` copies chosen rows
into one.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.feather as feather

# Rows per batch when a stage streams a table: about 160 MB of the churn table, so a batch is
# cheap next to the table at 10M rows and the per-batch overhead stays small.
BATCH_ROWS = 1_000_000


@dataclass(frozen=True)
class FrameRef:
    path: str
    rows: int
    columns: int

    def exists(self) -> bool:
        return Path(self.path).is_file()


def frame_path(root: Path, key: str, name: str) -> Path:
    return root / "frames" / f"{key}-{name}.arrow"


def _temporary(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(f"{path.name}.{uuid.uuid4().hex}.tmp")  # concurrent runs never share


def save_frame(frame: pd.DataFrame, path: Path) -> FrameRef:
    """Write atomically (temporary name, then rename) and return a reference."""
    return save_table(pa.Table.from_pandas(frame, preserve_index=False), path)


def save_table(table: pa.Table, path: Path) -> FrameRef:
    """Write an Arrow table atomically (temporary name, then rename) and return a reference."""
    tmp = _temporary(path)
    feather.write_feather(table, tmp, compression="uncompressed")
    os.replace(tmp, path)
    return FrameRef(str(path), table.num_rows, table.num_columns)


def _mapped(ref: FrameRef, columns: list[str] | None = None) -> pa.Table:
    """The checkpoint's table, memory-mapped: its buffers are the file's pages, not copies.

    (`pyarrow.feather.read_table(memory_map=True)` reads the whole file into memory, even for
    one column; the IPC reader on a memory map does not.)
    """
    with pa.memory_map(ref.path) as source:
        table = pa.ipc.open_file(source).read_all()
    return table if columns is None else table.select(columns)


def load_frame(ref: FrameRef, columns: list[str] | None = None) -> pd.DataFrame:
    return _mapped(ref, columns).to_pandas(self_destruct=True, split_blocks=True)


def sample_frame(ref: FrameRef, n: int, seed: int,
                 columns: list[str] | None = None) -> pd.DataFrame:
    """`n` random rows of the checkpoint: the rows, order and dtypes that
    `load_frame(ref, columns).sample(n, random_state=seed).reset_index(drop=True)` gives,
    gathered from the memory-mapped file without converting the rest of the table.
    """
    n = min(n, ref.rows)
    # pandas' DataFrame.sample draws its positions exactly so
    positions = np.random.RandomState(seed).choice(ref.rows, size=n, replace=False)
    table = _mapped(ref, columns).take(pa.array(positions.astype("int64")))
    return table.to_pandas(self_destruct=True, split_blocks=True)


def head_frame(ref: FrameRef, n: int, columns: list[str] | None = None) -> pd.DataFrame:
    """The checkpoint's first `n` rows, `load_frame(ref, columns).head(n)` without converting
    the rest of the table."""
    return _mapped(ref, columns).slice(0, n).to_pandas(split_blocks=True)


def frame_columns(ref: FrameRef) -> list[str]:
    """The checkpoint's column names, read from its schema alone."""
    with pa.memory_map(ref.path) as source:
        return pa.ipc.open_file(source).schema.names


def iter_frames(ref: FrameRef, rows: int | None = None) -> Iterator[pd.DataFrame]:
    """The checkpoint as DataFrames of about `rows` (default `BATCH_ROWS`) rows each, in order;
    at least one frame.

    Only one batch is in memory at a time: the file is read, not memory-mapped, so what was
    read is freed with the batch.
    """
    rows = rows or BATCH_ROWS
    with pa.OSFile(ref.path) as source:
        reader = pa.ipc.open_file(source)
        group: list[pa.RecordBatch] = []
        count = 0
        for i in range(reader.num_record_batches):
            batch = reader.get_batch(i)
            group.append(batch)
            count += batch.num_rows
            if count >= rows:
                yield _to_pandas(group, reader.schema)
                group, count = [], 0
        if group or reader.num_record_batches == 0:
            yield _to_pandas(group, reader.schema)


def _to_pandas(batches: list[pa.RecordBatch], schema: pa.Schema) -> pd.DataFrame:
    table = pa.Table.from_batches(batches, schema=schema)
    batches.clear()
    return table.to_pandas(self_destruct=True, split_blocks=True)


class FrameWriter:
    """Appends DataFrames (or Arrow tables) of one schema to a new checkpoint, atomically.

    Use as a context manager: the file appears under its name only if the block completes;
    on an error the partial file is removed. The first batch fixes the schema (and the pandas
    dtypes a reader gets back); later batches are converted to it.
    """
    def __init__(self, path: Path):
        self.path = path
        self.rows = 0
        self._tmp = _temporary(path)
        self._writer: Any = None
        self._schema: pa.Schema | None = None

    def write(self, part: pd.DataFrame | pa.Table) -> None:
        if isinstance(part, pa.Table):
            table = part if self._schema is None else part.cast(self._schema)
        else:
            table = pa.Table.from_pandas(part, schema=self._schema, preserve_index=False)
        if self._writer is None:
            self._schema = table.schema
            options = pa.ipc.IpcWriteOptions(compression=None)
            self._writer = pa.ipc.new_file(str(self._tmp), self._schema, options=options)
        self._writer.write_table(table)
        self.rows += table.num_rows

    def __enter__(self) -> FrameWriter:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if self._writer is not None:
            self._writer.close()
        if exc_type is None and self._writer is not None:
            os.replace(self._tmp, self.path)
        else:
            self._tmp.unlink(missing_ok=True)

    @property
    def ref(self) -> FrameRef:
        if self._schema is None:
            raise ValueError(f"nothing was written to {self.path}")
        return FrameRef(str(self.path), self.rows, len(self._schema))


def take_rows(ref: FrameRef, positions: Sequence[int], path: Path,
              rows: int | None = None) -> FrameRef:
    """Copy the rows at `positions` (in that order) of a checkpoint into a new one.

    Arrow gathers the rows straight from the memory-mapped file, a batch of positions at a
    time, so the copy never holds more than one batch besides the mapped file.
    """
    table, rows = _mapped(ref), rows or BATCH_ROWS
    positions = np.asarray(positions, dtype="int64")
    with FrameWriter(path) as writer:
        for start in range(0, max(len(positions), 1), rows):
            writer.write(table.take(pa.array(positions[start:start + rows])))
    return writer.ref


def release_memory() -> None:
    """Hand memory Arrow freed back to the system.

    Arrow's allocator keeps freed memory for reuse; after a stage has written its table, that
    memory would otherwise stay in the process and add to the next stage's peak.
    """
    pa.default_memory_pool().release_unused()
