"""This machine's snapshots of models' fast paths, so a batch process skips scikit-learn.

Loading a model the usual way imports scikit-learn and skops and checks the model file: about
2 s of CPU in every process that scores a batch (each Dask worker, each run of the flow). The
first process on a machine that loads a model, or reads the snapshot its bundle carries,
keeps its compiled fast path as a snapshot here (`serving.fastpath.snapshot`, checked against
the plain pipeline before it was written); later processes read the bundle's manifest, check
its model file's sha256, and build the scorer from the snapshot
(`serving.scoring.Scorer.restored`), without reading the bundle's copy
(`mlops.batch.run.scorer_for`). The model itself is loaded only if a row must take the plain
pipeline.

The cache is ``$XDG_CACHE_HOME/mlops/fastpath`` (``~/.cache`` by default), or
``MLOPS_FASTPATH_CACHE``; ``MLOPS_FASTPATH_CACHE=off`` turns it off. A snapshot's name holds
the model file's sha256, the snapshot format, a digest of the fast path's code and the
installed scikit-learn's version, so a changed model, code or scikit-learn never reads an old
one. Files are written whole (a temporary name, then a rename), so processes can share it.
"""

from __future__ import annotations

import logging
import os
import uuid
from pathlib import Path

logger = logging.getLogger(__name__)

CACHE_VARIABLE = "MLOPS_FASTPATH_CACHE"


def cache_folder() -> Path | None:
    """Where snapshots are kept; None when ``MLOPS_FASTPATH_CACHE=off``."""
    chosen = os.environ.get(CACHE_VARIABLE, "")
    if chosen.lower() == "off":
        return None
    if chosen:
        return Path(chosen)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mlops" / "fastpath"


def snapshot_path(model_sha256: str) -> Path | None:
    from serving.fastpath.snapshot import code_key  # noqa: PLC0415

    folder = cache_folder()
    return None if folder is None else folder / f"{model_sha256}-{code_key()}.npz"


def snapshot_exists(model_sha256: str) -> bool:
    path = snapshot_path(model_sha256)
    return path is not None and path.exists()


def find(model_sha256: str) -> bytes | None:
    """The kept snapshot of the model whose file has this sha256, or None."""
    path = snapshot_path(model_sha256)
    if path is None:
        return None
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        logger.warning("Cannot read the fast path snapshot %s (%s); loading the model", path,
                       exc)
        return None


def keep(model_sha256: str, snapshot: bytes) -> None:
    """Write the snapshot whole; a cache that cannot be written is logged, not raised."""
    path = snapshot_path(model_sha256)
    if path is None or path.exists():
        return
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial.write_bytes(snapshot)
        partial.replace(path)
    except OSError as exc:
        logger.warning("Cannot keep the fast path snapshot at %s: %s", path, exc)
        partial.unlink(missing_ok=True)


def forget(model_sha256: str) -> None:
    """Remove a snapshot that could not be read back."""
    path = snapshot_path(model_sha256)
    if path is not None:
        path.unlink(missing_ok=True)
