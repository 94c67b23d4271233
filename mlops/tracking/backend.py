"""The tracking store a spec selects: its `tracking.uri`, the Azure ML workspace when the
registry is there, or the SQLite store in the state folder."""

from __future__ import annotations

from pathlib import Path

from mlops.core.settings import Settings
from mlops.core.spec import PipelineSpec
from mlops.tracking.local import local_target
from mlops.tracking.protocol import Store, TrackingTarget

SQLITE = "sqlite:///"


def sqlite_target(uri: str) -> TrackingTarget:
    """A SQLite store the spec names keeps its artifacts in ``artifacts/`` beside its database,
    as the embedded default does, not in MLflow's ``./mlruns`` under whatever folder the run
    starts in. A relative path is the working folder's, as MLflow reads it."""
    path, sep, query = uri.removeprefix(SQLITE).partition("?")
    database = Path(path).resolve()
    return TrackingTarget(uri=f"{SQLITE}{database}{sep}{query}",
                          artifact_location=(database.parent / "artifacts").as_uri())


def tracking_target(spec: PipelineSpec, settings: Settings) -> TrackingTarget:
    """Where the spec's runs go. Building the Azure ML target asks Azure for the workspace's
    URI, so only the recorder process calls this."""
    uri = spec.tracking.uri
    if uri and uri.startswith(SQLITE):
        return sqlite_target(uri)
    if uri and not uri.startswith("azureml://"):
        return TrackingTarget(uri=uri)
    if spec.azureml is not None and (uri or spec.registry.backend == "azureml"):
        from mlops.tracking.azureml import azureml_target  # noqa: PLC0415 - azure.ai.ml

        return azureml_target(spec.azureml, uri)
    return local_target(settings.state_dir)


def open_store(spec: PipelineSpec, state_dir: str | Path) -> Store:
    """The spec's store, open. A SQLite store of the schema `sqlite_store` knows is written
    without mlflow; any other imports mlflow (seconds), so only the recorder and replay
    processes call this, never a flow."""
    target = tracking_target(spec, Settings(state_dir=Path(state_dir)))
    from mlops.tracking.sqlite_store import direct_store  # noqa: PLC0415

    direct = direct_store(target)
    if direct is not None:
        return direct
    from mlops.tracking.store import MlflowStore  # noqa: PLC0415 - mlflow

    return MlflowStore(target, spec.tracking.timeout_s, spec.tracking.max_retries)
