"""The embedded SQLite store written with ``sqlite3``: the rows MLflow's client would write, in
a recorder process that never imports mlflow.

Importing mlflow and opening its store costs the recorder about 3 CPU-seconds (mlflow's import
pulls in its GenAI, server and pandas modules; SQLAlchemy then reflects the schema), on a
2-core machine where the flow is loading and training at the same time. The few calls a run
record is made of (`protocol.Store`) are a handful of inserts. So for a SQLite store whose schema
is the one this module was checked against (`SCHEMA_REVISION`, MLflow's alembic revision), this
store writes those rows itself: the same tables, columns and values as `store.MlflowStore` writes
through MLflow (tests/mlops/tracking/test_sqlite_store.py compares the two row by row and reads
the result back through MLflow's client). A store of any other revision, or one that does not
exist yet while no template of this MLflow's schema does, is MLflow's to write (`direct_store`
answers None).

Two writers (two models training at once, the MLflow UI) share the file: every call is one
``BEGIN IMMEDIATE`` transaction, which waits for the other writer instead of failing.

The one row that differs from MLflow's: a new store's ``Default`` experiment keeps its artifacts
under the store's artifact root (``<root>/0``), where MLflow's client would use ``./mlruns/0``
in whatever folder the recorder runs.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlparse

from mlops.core.errors import TrackingError
from mlops.tracking.protocol import CHAMPION, MIRROR_DESCRIPTION, VERSION_TAG, TrackingTarget
from mlops.tracking.template import installed_schema_key, seed_from_template

# MLflow 3.18's last migration; another one means tables this store has not been checked against
SCHEMA_REVISION = "f4a9b2c7d1e6"
RUN_NAME_TAG = "mlflow.runName"
BUSY_TIMEOUT_S = 30.0
# MLflow keeps an infinite metric as the largest double of its sign, and NaN as 0 with a flag
_FLOAT_MAX = 1.7976931348623157e308


def _now_ms() -> int:
    return int(time.time() * 1000)


def _metric_value(value: float) -> tuple[float, int]:
    """The value MLflow stores and its NaN flag."""
    if math.isnan(value):
        return 0.0, 1
    if math.isinf(value):
        return math.copysign(_FLOAT_MAX, value), 0
    return value, 0


def _local_path(uri: str) -> Path:
    """The folder an artifact location names, which must be on this machine."""
    if uri.startswith("file:"):
        return Path(unquote(urlparse(uri).path))
    if uri.startswith("/"):
        return Path(uri)
    raise TrackingError(f"artifact location {uri!r} is not a local folder; the direct SQLite "
                        f"store copies artifacts into local folders only")


def database_path(uri: str) -> Path:
    """The file of a ``sqlite:///`` URI (its query, if any, left out)."""
    return Path(uri.removeprefix("sqlite:///").partition("?")[0])


def schema_revision(database: Path) -> str | None:
    """The store's alembic revision; None when it has none (not an MLflow store)."""
    read_only = f"{database.resolve().as_uri()}?mode=ro"
    with contextlib.closing(sqlite3.connect(read_only, uri=True)) as db:
        try:
            row = db.execute("SELECT version_num FROM alembic_version").fetchone()
        except sqlite3.DatabaseError:
            return None
    return row[0] if row else None


def direct_store(target: TrackingTarget) -> SqliteStore | None:
    """This store for `target` when it is a SQLite store of `SCHEMA_REVISION`, made from the
    template first when it does not exist yet; None when MLflow has to write it."""
    if not target.uri.startswith("sqlite:///") or target.artifact_location is None:
        return None
    database = database_path(target.uri)
    if not database.exists():
        key = installed_schema_key()
        if key is None or not seed_from_template(database, key):
            return None
    if schema_revision(database) != SCHEMA_REVISION:
        return None
    return SqliteStore(database, target.artifact_location)


class SqliteStore:
    """`protocol.Store` on ``sqlite3``; one instance per recorder, used from one thread at a
    time (not necessarily the one that opened it).

    Args:
        database: The store's file, of `SCHEMA_REVISION`.
        artifact_location: The artifact root of the experiments it creates.
    """

    def __init__(self, database: Path, artifact_location: str):
        self.database = database
        self.artifact_location = artifact_location.rstrip("/")
        self._db = sqlite3.connect(database, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                                   check_same_thread=False)
        with self._write() as db:
            if db.execute("SELECT COUNT(*) FROM experiments").fetchone()[0] == 0:
                self._new_experiment(db, "Default", f"{self.artifact_location}/0", 0)

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One transaction that holds the write lock from its start (module docstring)."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _new_experiment(self, db: sqlite3.Connection, name: str, location: str | None,
                        experiment_id: int | None = None) -> int:
        now = _now_ms()
        cursor = db.execute(
            "INSERT INTO experiments (experiment_id, name, artifact_location, lifecycle_stage, "
            "creation_time, last_update_time) VALUES (?, ?, ?, 'active', ?, ?)",
            (experiment_id, name, location, now, now))
        return int(cursor.lastrowid if experiment_id is None else experiment_id)

    def _experiment(self, db: sqlite3.Connection, name: str) -> tuple[int, str]:
        """The experiment's id and artifact location, created (with its artifact location
        under ours, as MLflow names it when none is given) if there is none of that name."""
        row = db.execute("SELECT experiment_id, artifact_location, lifecycle_stage FROM "
                         "experiments WHERE name = ? AND workspace = 'default'", (name,)).fetchone()
        if row is None:
            experiment_id = self._new_experiment(db, name, self.artifact_location)
            return experiment_id, self.artifact_location
        if row[2] != "active":
            raise TrackingError(f"experiment {name!r} is {row[2]}: a run needs an active one")
        return int(row[0]), row[1] or f"{self.artifact_location}/{row[0]}"

    def start_run(self, experiment: str, name: str, tags: dict[str, str]) -> str:
        run_id = uuid.uuid4().hex
        with self._write() as db:
            experiment_id, location = self._experiment(db, experiment)
            db.execute(
                "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, "
                "user_id, status, start_time, end_time, source_version, lifecycle_stage, "
                "artifact_uri, experiment_id) VALUES (?, ?, 'UNKNOWN', '', '', 'unknown', "
                "'RUNNING', ?, NULL, '', 'active', ?, ?)",
                (run_id, name, _now_ms(), f"{location}/{run_id}/artifacts", experiment_id))
            self._tags(db, run_id, {**tags, RUN_NAME_TAG: name})
        return run_id

    def _run(self, db: sqlite3.Connection, run_id: str) -> str:
        """The run's artifact URI.

        Raises:
            TrackingError: the run is not in the store.
        """
        row = db.execute("SELECT artifact_uri FROM runs WHERE run_uuid = ?", (run_id,)).fetchone()
        if row is None:
            raise TrackingError(f"run {run_id} is not in the store {self.database}")
        return row[0]

    @staticmethod
    def _tags(db: sqlite3.Connection, run_id: str, tags: dict[str, str]) -> None:
        db.executemany("INSERT OR REPLACE INTO tags (key, value, run_uuid) VALUES (?, ?, ?)",
                       [(k, str(v), run_id) for k, v in tags.items()])

    def log(self, run_id: str, *, params: dict[str, str] | None = None,
            metrics: dict[str, float] | None = None, tags: dict[str, str] | None = None) -> None:
        """One transaction for all of them, as MLflow's log_batch.

        Raises:
            TrackingError: a param already logged with another value (MLflow refuses that
                too), or a run that is not in the store.
        """
        now = _now_ms()
        with self._write() as db:
            self._run(db, run_id)
            for key, value in (params or {}).items():
                old = db.execute("SELECT value FROM params WHERE key = ? AND run_uuid = ?",
                                 (key, run_id)).fetchone()
                if old is not None and old[0] != str(value):
                    raise TrackingError(f"param {key!r} of run {run_id} is {old[0]!r} already; "
                                        f"MLflow does not change a param (to {str(value)!r})")
                db.execute("INSERT OR IGNORE INTO params (key, value, run_uuid) VALUES (?, ?, ?)",
                           (key, str(value), run_id))
            for key, raw in (metrics or {}).items():
                self._metric(db, run_id, key, *_metric_value(float(raw)), now)
            self._tags(db, run_id, tags or {})

    @staticmethod
    def _metric(db: sqlite3.Connection, run_id: str, key: str, value: float, is_nan: int,
                now: int) -> None:
        """A metric at step 0, and the run's latest value of it when it is later (step, then
        time, then value: MLflow's order)."""
        db.execute("INSERT OR IGNORE INTO metrics (key, value, timestamp, run_uuid, step, is_nan)"
                   " VALUES (?, ?, ?, ?, 0, ?)", (key, value, now, run_id, is_nan))
        latest = db.execute("SELECT step, timestamp, value FROM latest_metrics WHERE key = ? AND "
                            "run_uuid = ?", (key, run_id)).fetchone()
        if latest is None or (0, now, value) > tuple(latest):
            db.execute("INSERT OR REPLACE INTO latest_metrics (key, value, timestamp, step, "
                       "is_nan, run_uuid) VALUES (?, ?, ?, 0, ?, ?)",
                       (key, value, now, is_nan, run_id))

    def log_files(self, run_id: str, files: list[tuple[str, str]]) -> None:
        """Copy local files into the run's artifact folder: (artifact folder, file path)."""
        root = _local_path(self._run(self._db, run_id))
        for folder, path in files:
            into = root / folder if folder else root
            into.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, into / Path(path).name)

    def end_run(self, run_id: str, status: str) -> None:
        with self._write() as db:
            self._run(db, run_id)
            db.execute("UPDATE runs SET status = ?, end_time = ? WHERE run_uuid = ?",
                       (status, _now_ms(), run_id))

    def set_champion(self, model_name: str, version: int, source: str,
                     run_id: str | None) -> None:
        """Point the registered model's `champion` alias at our `version`, adding that version
        (numbered by MLflow's rule, ours in the tag `mlops.version`) first if it is not there."""
        now = _now_ms()
        with self._write() as db:
            db.execute("INSERT OR IGNORE INTO registered_models (name, creation_time, "
                       "last_updated_time, description) VALUES (?, ?, ?, ?)",
                       (model_name, now, now, MIRROR_DESCRIPTION))
            found = db.execute(
                "SELECT version FROM model_version_tags WHERE workspace = 'default' AND "
                "name = ? AND key = ? AND value = ? ORDER BY version LIMIT 1",
                (model_name, VERSION_TAG, str(version))).fetchone()
            mirrored = found[0] if found else self._new_version(db, model_name, version, source,
                                                                 run_id, now)
            db.execute("INSERT OR REPLACE INTO registered_model_aliases (alias, version, name) "
                       "VALUES (?, ?, ?)", (CHAMPION, mirrored, model_name))

    @staticmethod
    def _new_version(db: sqlite3.Connection, model_name: str, version: int, source: str,
                     run_id: str | None, now: int) -> int:
        mirrored = db.execute("SELECT COALESCE(MAX(version), 0) + 1 FROM model_versions WHERE "
                              "workspace = 'default' AND name = ?", (model_name,)).fetchone()[0]
        db.execute(
            "INSERT INTO model_versions (name, version, creation_time, last_updated_time, "
            "current_stage, source, run_id, status, storage_location) "
            "VALUES (?, ?, ?, ?, 'None', ?, ?, 'READY', ?)",
            (model_name, mirrored, now, now, source, run_id, source))
        db.execute("INSERT INTO model_version_tags (key, value, name, version) VALUES "
                   "(?, ?, ?, ?)", (VERSION_TAG, str(version), model_name, mirrored))
        db.execute("UPDATE registered_models SET last_updated_time = ? WHERE "
                   "workspace = 'default' AND name = ?", (now, model_name))
        return int(mirrored)

    def close(self) -> None:
        self._db.close()
