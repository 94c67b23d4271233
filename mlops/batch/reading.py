"""Read one partition in row batches, never whole: Parquet with pyarrow, CSV with pandas.

Only the columns the output needs are read: the model's features and the copied columns,
found by the scoring core's matcher (`serving.columns`, tolerant, as a request's are). A file
that cannot be read, or that lacks a needed column, is a `DataLoadError` naming the file and
the columns.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mlops.core.errors import DataLoadError, shorten
from mlops.data.loading import compression_of
from mlops.data.storage import FileInfo, format_of, url_to_fs
from serving.columns import match_columns

_READ_ERRORS = (pa.ArrowException, OSError, ValueError, EOFError, UnicodeDecodeError,
                pd.errors.ParserError, pd.errors.EmptyDataError)


def _format(info: FileInfo, fmt: str) -> str:
    found = fmt if fmt != "auto" else format_of(info.url)
    if found not in ("parquet", "csv"):
        raise DataLoadError(f"cannot tell the format of partition {info.url}; set data.format")
    return found


def _sources(info: FileInfo, names: Sequence[str], wanted: Sequence[str]) -> dict[str, str]:
    """wanted name -> the file's column, or the error naming the file and what it lacks."""
    match = match_columns(names, wanted)
    if match.missing:
        raise DataLoadError(
            f"partition {info.url} lacks columns {match.missing} "
            f"(it holds {shorten(str(list(names)), 300)})"
        )
    return match.found


def _guarded(info: FileInfo, batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """The batches; a failure while reading them names the file."""
    try:
        yield from batches
    except _READ_ERRORS as exc:
        raise DataLoadError(f"cannot read partition {info.url}: {shorten(str(exc), 300)}") from exc


def _parquet(handle: Any, info: FileInfo, wanted: Sequence[str], rows: int) -> tuple[
        dict[str, str], Iterator[pa.RecordBatch]]:
    parquet = pq.ParquetFile(handle)
    found = _sources(info, parquet.schema_arrow.names, wanted)
    return found, parquet.iter_batches(batch_size=rows, columns=list(dict.fromkeys(found.values())))


def _csv(handle: Any, info: FileInfo, wanted: Sequence[str], rows: int, sep: str) -> tuple[
        dict[str, str], Iterator[pa.RecordBatch]]:
    compression = compression_of(handle.read(6))
    handle.seek(0)
    header = pd.read_csv(handle, sep=sep, nrows=0, compression=compression)
    handle.seek(0)
    found = _sources(info, [str(c) for c in header.columns], wanted)
    chunks = pd.read_csv(handle, sep=sep, compression=compression, chunksize=rows,
                         usecols=list(dict.fromkeys(found.values())))
    return found, (pa.RecordBatch.from_pandas(chunk, preserve_index=False) for chunk in chunks)


@contextmanager
def open_batches(info: FileInfo, wanted: Sequence[str], rows: int, fmt: str = "auto",
                 sep: str = ",") -> Iterator[tuple[dict[str, str], Iterator[pa.RecordBatch]]]:
    """Open a partition: which column stands for each wanted name, and its row batches.

    Args:
        info: The file.
        wanted: The names to find (ignoring case and separators); only they are read.
        rows: Rows per batch (the last one may hold fewer).

    Raises:
        DataLoadError: the file cannot be opened or read (also while iterating), or lacks a
            wanted column; the message names the file and the columns.
    """
    fs, path = url_to_fs(info.url)
    kind = _format(info, fmt)
    opener: Callable[[Any], tuple[dict[str, str], Iterator[pa.RecordBatch]]] = (
        (lambda h: _parquet(h, info, wanted, rows)) if kind == "parquet"
        else (lambda h: _csv(h, info, wanted, rows, sep)))
    try:
        handle = fs.open(path, "rb")
    except (OSError, ValueError) as exc:
        raise DataLoadError(f"cannot open partition {info.url}: {shorten(str(exc), 300)}") from exc
    with handle:
        try:
            found, batches = opener(handle)
        except _READ_ERRORS as exc:
            raise DataLoadError(
                f"cannot read partition {info.url}: {shorten(str(exc), 300)}") from exc
        yield found, _guarded(info, batches)
