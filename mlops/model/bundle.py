"""Writing a model bundle (see ``serving.bundle`` for the format and for loading).

The manifest is written last, so a bundle whose manifest exists is complete.
"""

from __future__ import annotations

import io
import json
import platform
from datetime import UTC, datetime
from typing import Any

import fsspec
import pandas as pd

from serving.bundle import (
    FORMAT_VERSION,
    MANIFEST_FILE,
    MODEL_FILE,
    REFERENCE_FILE,
    sha256_bytes,
)
from serving.model_file import audit_model_file, skops_io

# The rows a version was judged on when it was registered: its trusted holdout, on which later
# candidates are judged against it (docs/promotion-gate.md). Serving never reads it.
HOLDOUT_FILE = "holdout.parquet"


def dump_model(model: Any) -> bytes:
    """Serialize a fitted pipeline with skops, refusing one the loaders would refuse.

    Raises:
        BundleLoadError: the pipeline holds a type outside `serving.allowed_types`.
    """
    data = skops_io().dumps(model)
    audit_model_file(data, "the fitted pipeline")
    return data


def feature_dtypes(frame: pd.DataFrame, names: list[str]) -> list[dict[str, str]]:
    return [{"name": n, "dtype": str(frame[n].dtype)} for n in names]


def build_manifest(
    *,
    model_name: str,
    version: int,
    model_bytes: bytes,
    features: list[dict[str, str]],
    lineage: dict[str, Any],
) -> dict[str, Any]:
    """The manifest of one version; `lineage` carries target, task, metrics and run details."""
    import sklearn  # noqa: PLC0415

    return {
        "format_version": FORMAT_VERSION,
        "model_name": model_name,
        "version": version,
        "features": features,
        "model_file": MODEL_FILE,
        "model_sha256": sha256_bytes(model_bytes),
        "registered_at": datetime.now(UTC).isoformat(),
        "sklearn_version": sklearn.__version__,
        "python_version": platform.python_version(),
        **lineage,
    }


def write_file(fs: fsspec.AbstractFileSystem, path: str, data: bytes) -> None:
    """Write `data` so that readers see the old file or the new one, never a part.

    On a local disk: a temporary name then an atomic rename. On object stores one PUT is
    already all-or-nothing.
    """
    if "file" in fs.protocol or "local" in fs.protocol:
        tmp = f"{path}.tmp"
        fs.pipe_file(tmp, data)
        fs.mv(tmp, path)
    else:
        fs.pipe_file(path, data)


def write_bundle(
    fs: fsspec.AbstractFileSystem,
    root: str,
    model_bytes: bytes,
    manifest: dict[str, Any],
    reference: pd.DataFrame,
    holdout: pd.DataFrame | None = None,
) -> None:
    """Write the files of a bundle into `root`, manifest last."""
    fs.makedirs(root, exist_ok=True)
    fs.pipe_file(f"{root}/{MODEL_FILE}", model_bytes)
    fs.pipe_file(f"{root}/{REFERENCE_FILE}", _parquet(reference))
    if holdout is not None:
        fs.pipe_file(f"{root}/{HOLDOUT_FILE}", _parquet(holdout))
    write_file(fs, f"{root}/{MANIFEST_FILE}", json.dumps(manifest, indent=2, default=str).encode())


def _parquet(frame: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return buf.getvalue()


def read_holdout(fs: fsspec.AbstractFileSystem, path: str) -> pd.DataFrame | None:
    """A bundle's trusted holdout with its pandas dtypes, or None when the bundle has none."""
    try:
        data = fs.cat_file(path)
    except FileNotFoundError:
        return None
    return pd.read_parquet(io.BytesIO(data))
