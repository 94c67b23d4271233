"""The embedded default: a SQLite store and an artifact folder in the state folder, no server."""

from __future__ import annotations

from pathlib import Path

from mlops.tracking.protocol import TrackingTarget


def local_folder(state_dir: Path) -> Path:
    return Path(state_dir).resolve() / "mlflow"


def local_target(state_dir: Path) -> TrackingTarget:
    """``sqlite:///<state>/mlflow/mlflow.db`` with artifacts in ``<state>/mlflow/artifacts``
    (the same two `mlops up` serves the MLflow UI from)."""
    folder = local_folder(state_dir)
    return TrackingTarget(
        uri=f"sqlite:///{folder / 'mlflow.db'}",
        artifact_location=(folder / "artifacts").as_uri(),
    )
