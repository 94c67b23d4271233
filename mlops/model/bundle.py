"""Writing a model bundle (see ``serving.bundle`` for the format and for loading).

The manifest is written last, so a bundle whose manifest exists is complete.
"""

from __future__ import annotations

import io
import json
import logging
import platform
from datetime import UTC, datetime
from typing import Any

import fsspec
import pandas as pd

from mlops.data.storage import write_file
from serving.bundle import (
    FAST_PATH_FILE,
    FORMAT_VERSION,
    MANIFEST_FILE,
    MODEL_FILE,
    REFERENCE_FILE,
    Bundle,
    BundleLoadError,
    load_model,
    parse_features,
    sha256_bytes,
)
from serving.model_file import audit_model_file, skops_io

logger = logging.getLogger(__name__)

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


def fast_path_snapshot(name: str, model_bytes: bytes, features: list[dict[str, str]],
                       task: str) -> bytes | None:
    """The snapshot of the model's fast path that its bundle carries (`serving.bundle`
    ``fast_path``), or None when the model has none to keep (not HistGradientBoosting, or a
    fast path that does not answer the probe rows as the plain pipeline does).

    The model is loaded from `model_bytes` with every check of `serving.bundle.load_model`,
    so the snapshot is made from the very file registered, as a batch process that loads the
    bundle would make it (`serving.scoring.Scorer.snapshot`). A file those checks refuse gets
    no snapshot; registering it is the caller's decision, and loading it fails as before.
    """
    from serving.scoring import Scorer  # noqa: PLC0415 - imports the fast path

    source = f"the new version of '{name}'"
    try:
        parsed = parse_features(features, source)
        model = load_model(model_bytes, parsed, task, source)
    except BundleLoadError as exc:
        logger.warning("%s: no snapshot of its fast path, the model does not load: %s", source,
                       exc)
        return None
    bundle = Bundle(model=model, manifest={"model_name": name, "version": "(new)"}, url="",
                    features=parsed)
    return Scorer(bundle, fast=True).snapshot(kernel=False)  # numba only where batches run


def feature_dtypes(frame: pd.DataFrame, names: list[str]) -> list[dict[str, str]]:
    return [{"name": n, "dtype": str(frame[n].dtype)} for n in names]


def build_manifest(
    *,
    model_name: str,
    version: int,
    model_bytes: bytes,
    features: list[dict[str, str]],
    lineage: dict[str, Any],
    fast_path: bytes | None = None,
) -> dict[str, Any]:
    """The manifest of one version; `lineage` carries target, task, metrics and run details,
    `fast_path` the snapshot `fast_path_snapshot` made, if any."""
    import sklearn  # noqa: PLC0415

    from serving.fastpath.snapshot import code_key  # noqa: PLC0415

    kept = {} if fast_path is None else {"fast_path": {
        "file": FAST_PATH_FILE, "sha256": sha256_bytes(fast_path), "code": code_key()}}
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
        **kept,  # names the file written next to the model, whatever the lineage says
    }


def write_bundle(
    fs: fsspec.AbstractFileSystem,
    root: str,
    model_bytes: bytes,
    manifest: dict[str, Any],
    reference: pd.DataFrame,
    holdout: pd.DataFrame | None = None,
    fast_path: bytes | None = None,
) -> None:
    """Write the files of a bundle into `root`, manifest last."""
    fs.makedirs(root, exist_ok=True)
    fs.pipe_file(f"{root}/{MODEL_FILE}", model_bytes)
    if fast_path is not None:
        fs.pipe_file(f"{root}/{FAST_PATH_FILE}", fast_path)
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
