"""Write a partition's output so that a reader sees all of it or none of it.

Each output file is written under the output folder's ``_tmp/`` (a name every reader of the
folder skips, see `mlops.data.storage.is_hidden_or_temp`) and moved to its final name once
complete: a rename on a local disk, a server-side copy on Blob Storage, both of which show the
whole file at once. The file carries its partition's key in its Parquet metadata, and a summary
(input, model, row counts) written last: `finished` reads only the file's footer to tell a
finished, still good output from one to redo.
"""

from __future__ import annotations

import json
import logging
import uuid
from types import TracebackType
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from mlops.data.storage import url_to_fs

logger = logging.getLogger(__name__)

TEMP_FOLDER = "_tmp"
KEY = b"mlops.batch.key"
SUMMARY = b"mlops.batch.summary"


def _paths(output_url: str, name: str) -> tuple[Any, str, str]:
    fs, root = url_to_fs(output_url)
    root = root.rstrip("/")
    return fs, f"{root}/{name}", f"{root}/{TEMP_FOLDER}/{name}"


def finished(output_url: str, name: str, key: str) -> dict[str, Any] | None:
    """The summary of the output file `name` if it exists and was written for `key`."""
    fs, path, _ = _paths(output_url, name)
    try:
        metadata = pq.read_metadata(path, filesystem=fs).metadata or {}
    except FileNotFoundError:
        return None
    if metadata.get(KEY) != key.encode() or SUMMARY not in metadata:
        return None
    return json.loads(metadata[SUMMARY])


class PartitionWriter:
    """One output file, written batch by batch under a temporary name; `commit` publishes it.

    Leaving the `with` block without `commit` (an error, an interruption) removes the
    temporary file; a process killed outright leaves it in ``_tmp/``, where the next writer of
    the same partition removes it.
    """

    def __init__(self, output_url: str, name: str, key: str) -> None:
        self.fs, self.path, temp_prefix = _paths(output_url, name)
        self.key = key
        self.temp = f"{temp_prefix}.{uuid.uuid4().hex}.tmp"
        self._handle: Any = None
        self._writer: pq.ParquetWriter | None = None
        self.schema: pa.Schema | None = None
        self.committed = False
        for stale in self.fs.glob(f"{temp_prefix}.*.tmp"):
            logger.info("Removing %s, left by an interrupted run", stale)
            self.fs.rm(stale)

    def __enter__(self) -> PartitionWriter:
        self.fs.makedirs(self.temp.rsplit("/", 1)[0], exist_ok=True)
        self._handle = self.fs.open(self.temp, "wb")
        return self

    def write(self, batch: pa.RecordBatch) -> None:
        """Append one batch (a row group); later batches are cast to the first one's schema."""
        if self._writer is None:
            self.schema = batch.schema.with_metadata({KEY: self.key.encode()})
            self._writer = pq.ParquetWriter(self._handle, self.schema)
        elif batch.schema != self.schema.remove_metadata():
            batch = batch.cast(self.schema.remove_metadata())
        self._writer.write_batch(batch)

    def commit(self, summary: dict[str, Any], empty_schema: pa.Schema) -> None:
        """Close the file with `summary` in its metadata and move it to its final name."""
        if self._writer is None:  # no rows: still a file, so the partition counts as done
            self.schema = empty_schema.with_metadata({KEY: self.key.encode()})
            self._writer = pq.ParquetWriter(self._handle, self.schema)
        self._writer.add_key_value_metadata({SUMMARY: json.dumps(summary).encode()})
        self._writer.close()
        self._handle.close()
        self.fs.mv(self.temp, self.path)
        self.committed = True

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.committed:
            return
        if self._writer is not None:
            self._writer.close()
        self._handle.close()
        if self.fs.exists(self.temp):
            self.fs.rm(self.temp)
