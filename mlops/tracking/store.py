"""The MLflow store behind a `TrackingTarget`: MLflow's own client, a few calls per run.

Imports ``mlflow`` (about 1.4 s) at its top, so only the recorder and replay processes import
this module (`backend.open_store`): a flow's process never does.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import mlflow.store
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.version import VERSION

from mlops.tracking.protocol import CHAMPION, MIRROR_DESCRIPTION, VERSION_TAG, TrackingTarget
from mlops.tracking.sqlite_store import database_path
from mlops.tracking.template import schema_key, seed_store


def store_schema() -> str:
    """The key of an empty store of this MLflow (`template.schema_key`)."""
    migrations = Path(mlflow.store.__file__).parent / "db_migrations" / "versions"
    return schema_key(VERSION, migrations)


def _bound_http(timeout_s: float, max_retries: int) -> None:
    """MLflow's REST client reads these per request: a hanging server costs at most
    `timeout_s` per try (its defaults: 120 s and 7 retries with backoff)."""
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(max(1, math.ceil(timeout_s)))
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = str(max_retries)


class MlflowStore:
    """`Store` on MlflowClient; one instance per recorder, used from one thread."""

    def __init__(self, target: TrackingTarget, timeout_s: float, max_retries: int):
        self.target = target
        if target.uri.startswith(("http://", "https://")):
            _bound_http(timeout_s, max_retries)
        if target.uri.startswith("sqlite:///"):
            database = database_path(target.uri)
            database.parent.mkdir(parents=True, exist_ok=True)
            seed_store(database, store_schema(), MlflowClient)
        self._authorize()
        self.client = MlflowClient(tracking_uri=target.uri, registry_uri=target.uri)

    def _authorize(self) -> None:
        if self.target.token is not None:
            # MLflow's REST client sends it as "Authorization: Bearer ..." on every request
            os.environ["MLFLOW_TRACKING_TOKEN"] = self.target.token()

    def _experiment_id(self, name: str) -> str:
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        try:
            return self.client.create_experiment(
                name, artifact_location=self.target.artifact_location
            )
        except MlflowException:  # another run created it meanwhile
            found = self.client.get_experiment_by_name(name)
            if found is None:
                raise
            return found.experiment_id

    def start_run(self, experiment: str, name: str, tags: dict[str, str]) -> str:
        self._authorize()
        run = self.client.create_run(self._experiment_id(experiment), run_name=name, tags=tags)
        return run.info.run_id

    def log(self, run_id: str, *, params: dict[str, str] | None = None,
            metrics: dict[str, float] | None = None, tags: dict[str, str] | None = None) -> None:
        """One request for all of them (log_batch)."""
        self._authorize()
        now = int(time.time() * 1000)
        self.client.log_batch(
            run_id,
            metrics=[Metric(k, float(v), now, 0) for k, v in (metrics or {}).items()],
            params=[Param(k, str(v)) for k, v in (params or {}).items()],
            tags=[RunTag(k, str(v)) for k, v in (tags or {}).items()],
        )

    def log_files(self, run_id: str, files: list[tuple[str, str]]) -> None:
        """Copy local files into the run's artifacts: (artifact folder, file path) pairs."""
        if not self.target.artifacts:
            return
        for folder, path in files:
            self.client.log_artifact(run_id, path, artifact_path=folder or None)

    def end_run(self, run_id: str, status: str) -> None:
        self._authorize()
        self.client.set_terminated(run_id, status)

    def set_champion(self, model_name: str, version: int, source: str,
                     run_id: str | None) -> None:
        """Point the registered model's `champion` alias at our `version`, adding that version
        to MLflow's registry first if it is not there yet (MLflow numbers its own versions;
        the tag `mlops.version` holds ours). Not on a target whose own registry holds it."""
        if not self.target.mirror_champion:
            return
        self._authorize()
        try:
            self.client.get_registered_model(model_name)
        except MlflowException:
            self.client.create_registered_model(model_name, description=MIRROR_DESCRIPTION)
        found = [mv for mv in self.client.search_model_versions(f"name='{model_name}'")
                 if mv.tags.get(VERSION_TAG) == str(version)]
        mirrored = found[0] if found else self.client.create_model_version(
            model_name, source, run_id=run_id, tags={VERSION_TAG: str(version)}
        )
        self.client.set_registered_model_alias(model_name, CHAMPION, mirrored.version)

    def close(self) -> None:
        """Nothing to release: MlflowClient opens what it needs per call."""
