"""What a batch run scores: the input's partitions, each with the output file it becomes.

The input is any data URL training takes (a file, a folder of Parquet or CSV partitions, a
glob, ``abfs://...``), listed by `mlops.data.storage.list_data_files`. Each input file is one
partition; its output file is named after the input's URL, so every run over the same input
writes the same names and a finished partition is found again. Whether a finished output is
still good is its key: the input file's URL, size and version (etag or mtime), the model
version and digest, and what the output holds. A changed input or another model gives another
key, and the partition is scored again and replaced. A `PartitionResult` says what became of one
partition. Nothing here imports pandas: on a cluster the flow's process plans and collects with
this module, and only the workers read rows.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from dataclasses import asdict, dataclass

from mlops.data.storage import FileInfo, list_data_files

FORMAT_VERSION = 1
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class ModelRef:
    """The model a run scores with: enough to load it and to key its outputs."""

    name: str
    version: str
    url: str
    sha256: str


@dataclass(frozen=True)
class OutputPlan:
    """What every partition of a run writes, and how it reads its input."""

    output_url: str
    model: ModelRef
    ids: tuple[str, ...]
    passthrough: tuple[str, ...]
    probabilities: bool
    rows_per_batch: int
    fmt: str = "auto"
    separator: str = ","
    fast: bool = True
    predict_threads: int | None = None  # OpenMP threads of one partition's predict; None: as is


def copied_columns(plan: OutputPlan) -> list[str]:
    """The input columns every output row carries: the ids, then the passthrough columns."""
    return list(dict.fromkeys([*plan.ids, *plan.passthrough]))


@dataclass(frozen=True)
class Partition:
    """One input file and the name of its output file in the output folder."""

    input: FileInfo
    output_name: str

    def key(self, plan: OutputPlan) -> str:
        """Identifies this partition's output: equal keys mean equal output rows."""
        payload = {
            "format": FORMAT_VERSION, "input": asdict(self.input), "model": asdict(plan.model),
            "ids": plan.ids, "passthrough": plan.passthrough, "probabilities": plan.probabilities,
            "separator": plan.separator,
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class PartitionResult:
    """What became of one partition (small: it travels back from workers)."""

    input_url: str
    output_name: str
    rows: int
    failed_rows: int
    skipped: bool
    seconds: float
    worker: str = ""  # host:pid of the process that scored (or skipped) it


def output_name(url: str) -> str:
    """`<input file stem>-<12 hex digits of its URL's digest>.parquet`: readable, unique."""
    stem = posixpath.basename(url.rstrip("/")).split(".", 1)[0] or "part"
    digest = hashlib.sha256(url.encode()).hexdigest()[:12]
    return f"{_UNSAFE.sub('_', stem)[:60]}-{digest}.parquet"


def plan_partitions(input_url: str, fmt: str = "auto") -> list[Partition]:
    """The partitions of `input_url`, sorted by URL.

    Raises:
        DataLoadError: as `list_data_files` (nothing there, unknown format, access refused).
    """
    return [Partition(f, output_name(f.url)) for f in list_data_files(input_url, fmt)]
