"""A new SQLite store is a copy of an empty migrated one: no migration of its own, MLflow opens
it and reads back what it records, its Default experiment is its own, and the template is kept
per MLflow schema."""

from __future__ import annotations

from pathlib import Path

import mlflow.store.db.utils
import pytest
from mlflow.tracking import MlflowClient

from mlops.tracking.protocol import TrackingTarget
from mlops.tracking.store import MlflowStore, store_schema
from mlops.tracking.template import schema_key, seed_store, template_folder


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _store(folder: Path) -> MlflowStore:
    return MlflowStore(TrackingTarget(uri=f"sqlite:///{folder / 'mlflow.db'}",
                                      artifact_location=(folder / "artifacts").as_uri()), 10, 0)


def test_a_second_new_store_is_not_migrated_and_reads_back(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _store(tmp_path / "first")
    assert (template_folder() / f"{store_schema()}.db").exists()

    def no_migration(engine):
        raise AssertionError("a new store was migrated instead of copied from the template")

    monkeypatch.setattr(mlflow.store.db.utils, "_initialize_tables", no_migration)
    elsewhere = tmp_path / "elsewhere"  # another flow's working folder
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    second = _store(tmp_path / "second")
    run_id = second.start_run("copied", "run", {"mlops.kind": "training"})
    second.log(run_id, metrics={"candidate.roc_auc": 0.8}, params={"split.test_size": "0.2"})
    second.end_run(run_id, "FINISHED")

    client = MlflowClient(f"sqlite:///{tmp_path / 'second' / 'mlflow.db'}")
    run = client.get_run(run_id)
    assert run.data.metrics == {"candidate.roc_auc": 0.8}
    assert run.info.status == "FINISHED"
    # MLflow's own Default experiment, made on opening the copy, not the template's
    default = client.get_experiment("0")
    assert default.name == "Default"
    assert default.artifact_location.startswith(str(elsewhere / "mlruns")), default
    assert [e.name for e in client.search_experiments()].count("Default") == 1


def test_an_existing_store_is_left_alone(tmp_path):
    database = tmp_path / "mlflow.db"
    database.write_bytes(b"not a template")
    assert not seed_store(database, "any", lambda uri: None)
    assert database.read_bytes() == b"not a template"


def test_the_template_is_kept_per_mlflow_version_and_migrations(tmp_path):
    migrations = tmp_path / "versions"
    migrations.mkdir()
    (migrations / "0001_initial.py").touch()
    key = schema_key("3.18.0", migrations)
    assert key.startswith("3.18.0-")
    assert schema_key("3.19.0", migrations) != key
    (migrations / "0002_more.py").touch()
    assert schema_key("3.18.0", migrations) != key


def test_the_template_is_made_once(tmp_path):
    made: list[str] = []

    def migrate(uri: str) -> None:
        made.append(uri)
        MlflowClient(uri)

    for name in ("a", "b", "c"):
        assert seed_store(tmp_path / name / "mlflow.db", "k", migrate)
    assert len(made) == 1
    assert sorted(p.name for p in template_folder().iterdir()) == ["k.db"]
