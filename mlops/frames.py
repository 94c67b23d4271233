"""Stage checkpoints for big tables: Arrow files on local disk, passed around as references.

Prefect persists task results as base64 pickles inside JSON, which for a million-row DataFrame
costs seconds and several transient copies. The data stages instead write their output once
as an uncompressed Arrow (Feather v2) file, named by the stage's cache key, and return a small
`FrameRef`; that reference is what Prefect caches. Readers memory-map the file.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.feather as feather


@dataclass(frozen=True)
class FrameRef:
    path: str
    rows: int
    columns: int

    def exists(self) -> bool:
        return Path(self.path).is_file()


def frame_path(root: Path, key: str, name: str) -> Path:
    return root / "frames" / f"{key}-{name}.arrow"


def save_frame(frame: pd.DataFrame, path: Path) -> FrameRef:
    """Write atomically (temporary name, then rename) and return a reference."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex}.tmp")  # concurrent runs never share
    table = pa.Table.from_pandas(frame, preserve_index=False)
    feather.write_feather(table, tmp, compression="uncompressed")
    del table
    os.replace(tmp, path)
    return FrameRef(str(path), len(frame), frame.shape[1])


def load_frame(ref: FrameRef, columns: list[str] | None = None) -> pd.DataFrame:
    table = feather.read_table(ref.path, columns=columns, memory_map=True)
    return table.to_pandas(self_destruct=True, split_blocks=True)
