"""The direct SQLite store writes what MLflow's client writes, row for row, MLflow reads it back,
and any store it was not checked against is left to MLflow."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from mlops.core.errors import TrackingError
from mlops.core.spec import load_spec
from mlops.tracking.local import local_target
from mlops.tracking.protocol import Store
from mlops.tracking.sqlite_store import SCHEMA_REVISION, SqliteStore, direct_store
from mlops.tracking.store import MlflowStore, store_schema
from mlops.tracking.template import installed_schema_key, template_folder
from tests.conftest import ROOT, write_spec

TABLES = ["experiments", "experiment_tags", "runs", "tags", "params", "metrics", "latest_metrics",
          "registered_models", "registered_model_tags", "model_versions", "model_version_tags",
          "registered_model_aliases", "inputs", "input_tags", "datasets", "logged_models"]
TIMES = {"creation_time", "last_update_time", "last_updated_time", "start_time", "end_time",
         "timestamp"}


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    return tmp_path / "cache"


@pytest.fixture
def template(tmp_path: Path) -> None:
    """The template of the installed MLflow's schema, made once by MLflow (as the first tracked
    run on a machine does)."""
    MlflowStore(local_target(tmp_path / "seed"), 10, 0).close()


def _direct(folder: Path) -> SqliteStore:
    store = direct_store(local_target(folder))
    assert isinstance(store, SqliteStore)
    return store


def _files(folder: Path) -> list[tuple[str, str]]:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.json").write_text('{"roc_auc": 0.81}')
    (folder / "evaluation.png").write_bytes(b"\x89PNG not really")
    return [("evaluation", str(folder / "metrics.json")),
            ("evaluation", str(folder / "evaluation.png")), ("spec", str(folder / "metrics.json"))]


def _record(store: Store, files: list[tuple[str, str]]) -> list[str]:
    """A promoted run, a failed one whose version was champion a while, and a drift check."""
    first = store.start_run("churn", "brave-fox", {"mlops.kind": "training", "mlops.flow": "a"})
    store.log(first, params={"model.max_iter": "100", "split.kind": "time"})
    store.log(first, metrics={"candidate.roc_auc": 0.81, "delta.roc_auc": float("nan"),
                              "ci.high": float("inf")}, tags={"mlops.decision": "promote"})
    store.log_files(first, files)
    store.set_champion("churn", 1, "file:///registry/churn/1", first)
    store.end_run(first, "FINISHED")
    second = store.start_run("churn", "calm-owl", {"mlops.kind": "training"})
    store.log(second, metrics={"candidate.roc_auc": 0.79})
    store.log(second, metrics={"candidate.roc_auc": 0.80}, params={"model.max_iter": "50"})
    store.end_run(second, "FAILED")
    store.set_champion("churn", 2, "file:///registry/churn/2", second)
    store.set_champion("churn", 1, "file:///registry/churn/1", first)  # a rollback
    drift = store.start_run("churn-drift", "check", {})
    store.log(drift, metrics={"drift.tenure": 0.12})
    store.end_run(drift, "FINISHED")
    store.close()
    return [first, second, drift]


def _rows(database: Path, runs: list[str], root: Path) -> dict[str, list[dict]]:
    """Every row of the tables a run record touches, with run ids by order, times as ordered
    marks and the folder as `root`: what two stores fed the same records must agree on."""
    names = {run: f"run{i}" for i, run in enumerate(runs)}
    with sqlite3.connect(database) as db:
        stamps = sorted({v for t in TABLES for row in db.execute(f"SELECT * FROM {t}")  # noqa: S608
                         for v in row if isinstance(v, int) and v > 10**12})
        out = {}
        for table in TABLES:
            cursor = db.execute(f"SELECT * FROM {table}")  # noqa: S608 - our own table names
            columns = [d[0] for d in cursor.description]
            rows = []
            for row in cursor.fetchall():
                item = {}
                for column, value in zip(columns, row, strict=True):
                    if column in TIMES and value is not None:
                        value = "time"
                    text = json.dumps(value)
                    for run, name in names.items():
                        text = text.replace(run, name)
                    item[column] = json.loads(text.replace(str(root), "<root>"))
                rows.append(item)
            out[table] = sorted(rows, key=json.dumps)
    assert stamps, "no time was recorded"
    return out


def test_it_writes_the_rows_mlflow_writes(tmp_path):
    by_mlflow, direct = tmp_path / "a", tmp_path / "b"
    mlflow_runs = _record(MlflowStore(local_target(by_mlflow), 10, 0), _files(tmp_path / "files"))
    direct_runs = _record(_direct(direct), _files(tmp_path / "files"))

    expected = _rows(by_mlflow / "mlflow" / "mlflow.db", mlflow_runs, by_mlflow)
    got = _rows(direct / "mlflow" / "mlflow.db", direct_runs, direct)
    # the one difference, on purpose (module docstring): Default's artifacts under our root
    [default] = [e for e in got["experiments"] if e["name"] == "Default"]
    assert default["artifact_location"] == "file://<root>/mlflow/artifacts/0"
    [theirs] = [e for e in expected["experiments"] if e["name"] == "Default"]
    assert theirs["artifact_location"] == f"{tmp_path}/mlruns/0"
    theirs["artifact_location"] = default["artifact_location"]
    for table in TABLES:
        assert got[table] == expected[table], table
    for folder, runs in ((by_mlflow, mlflow_runs), (direct, direct_runs)):
        artifacts = folder / "mlflow" / "artifacts"
        found = sorted(p.relative_to(artifacts).as_posix().replace(runs[0], "run")
                       for p in artifacts.rglob("*") if p.is_file())
        assert found == ["run/artifacts/evaluation/evaluation.png",
                         "run/artifacts/evaluation/metrics.json", "run/artifacts/spec/metrics.json"]


def test_mlflow_reads_back_what_it_wrote(tmp_path, template):
    store = _direct(tmp_path)
    first, second, drift = _record(store, _files(tmp_path / "files"))
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}")
    run = client.get_run(first)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "brave-fox"
    assert run.data.params == {"model.max_iter": "100", "split.kind": "time"}
    assert run.data.metrics["candidate.roc_auc"] == 0.81
    assert str(run.data.metrics["delta.roc_auc"]) == "nan"
    assert run.data.metrics["ci.high"] == sys.float_info.max  # MLflow's own way with infinity
    assert run.data.tags["mlops.decision"] == "promote"
    assert sorted(a.path for a in client.list_artifacts(first, "evaluation")) == [
        "evaluation/evaluation.png", "evaluation/metrics.json"]
    assert client.get_metric_history(second, "candidate.roc_auc")[-1].value == 0.80
    assert client.get_run(second).info.status == "FAILED"
    champion = client.get_model_version_by_alias("churn", "champion")
    assert (champion.run_id, champion.tags["mlops.version"]) == (first, "1")
    assert sorted(int(v.version) for v in client.search_model_versions("name='churn'")) == [1, 2]
    assert client.get_experiment_by_name("churn-drift").experiment_id == \
        client.get_run(drift).info.experiment_id


def test_a_param_is_not_changed(tmp_path, template):
    store = _direct(tmp_path)
    run = store.start_run("churn", "run", {})
    store.log(run, params={"split.kind": "time"})
    store.log(run, params={"split.kind": "time"})
    with pytest.raises(TrackingError, match="'split.kind' of run .* is 'time' already"):
        store.log(run, params={"split.kind": "random"})


def test_a_run_that_is_not_there_is_an_error(tmp_path, template):
    store = _direct(tmp_path)
    with pytest.raises(TrackingError, match="run 0123 is not in the store"):
        store.log("0123", metrics={"a": 1.0})
    with pytest.raises(TrackingError, match="run 0123 is not in the store"):
        store.end_run("0123", "FINISHED")


def test_two_writers_at_once_both_land(tmp_path, template):
    """Two models training at once share the state folder's store."""
    stores = [_direct(tmp_path) for _ in range(2)]
    runs: list[str] = []

    def write(store: SqliteStore, model: str) -> None:
        for _ in range(20):
            run = store.start_run(model, "run", {})
            store.log(run, metrics={"m": 1.0}, params={"p": "1"})
            store.end_run(run, "FINISHED")
            runs.append(run)
        store.set_champion(model, 1, f"file:///{model}/1", run)

    threads = [threading.Thread(target=write, args=(s, m)) for s, m in zip(stores, "ab",
                                                                           strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}")
    found = client.search_runs([client.get_experiment_by_name(m).experiment_id for m in "ab"],
                               max_results=100)
    assert sorted(r.info.run_id for r in found) == sorted(runs)
    assert len(runs) == 40
    assert {m: client.get_model_version_by_alias(m, "champion").version for m in "ab"} == \
        {"a": 1, "b": 1}


def test_a_store_of_another_schema_is_left_to_mlflow(tmp_path):
    MlflowStore(local_target(tmp_path), 10, 0).close()  # a store, and the template
    database = tmp_path / "mlflow" / "mlflow.db"
    assert isinstance(direct_store(local_target(tmp_path)), SqliteStore)
    with sqlite3.connect(database) as db:
        db.execute("UPDATE alembic_version SET version_num = 'a0later0rev'")
    assert direct_store(local_target(tmp_path)) is None


def test_a_new_store_needs_the_template(tmp_path):
    """Without a template of the installed MLflow's schema, only MLflow can make the store;
    with one, the new store is its copy."""
    assert direct_store(local_target(tmp_path / "first")) is None
    assert not (tmp_path / "first" / "mlflow" / "mlflow.db").exists()
    MlflowStore(local_target(tmp_path / "first"), 10, 0).close()
    assert (template_folder() / f"{store_schema()}.db").exists()
    assert isinstance(direct_store(local_target(tmp_path / "second")), SqliteStore)


def test_the_schema_key_is_read_without_importing_mlflow():
    """The same key as MLflow's own (the template's name), from a process without mlflow."""
    code = ("import sys\nfrom mlops.tracking.template import installed_schema_key\n"
            "print(installed_schema_key())\nassert 'mlflow' not in sys.modules\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    assert out.stdout.strip() == store_schema() == installed_schema_key()


def test_the_checked_revision_is_the_installed_mlflows(tmp_path):
    """An MLflow upgrade that adds a migration fails here: check the tables this store writes
    against the new schema (test_it_writes_the_rows_mlflow_writes), then move the revision."""
    MlflowStore(local_target(tmp_path), 10, 0).close()
    with sqlite3.connect(tmp_path / "mlflow" / "mlflow.db") as db:
        assert db.execute("SELECT version_num FROM alembic_version").fetchone()[0] == \
            SCHEMA_REVISION


def test_the_recorder_opens_the_embedded_store_without_mlflow(tmp_path, template):
    spec = load_spec(write_spec(tmp_path, "direct", {"name": "direct"}))
    code = ("import sys\nfrom mlops.core.spec import PipelineSpec\n"
            "from mlops.tracking.backend import open_store\n"
            "spec = PipelineSpec.model_validate_json(sys.stdin.read())\n"
            f"store = open_store(spec, {str(tmp_path / 'state')!r})\n"
            "run = store.start_run('direct', 'run', {})\nstore.end_run(run, 'FINISHED')\n"
            "print(type(store).__name__, 'mlflow' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], input=spec.model_dump_json(),
                         capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.split() == ["SqliteStore", "False"]
    client = MlflowClient(f"sqlite:///{tmp_path / 'state' / 'mlflow' / 'mlflow.db'}")
    [run] = client.search_runs([client.get_experiment_by_name("direct").experiment_id])
    assert run.info.status == "FINISHED"


def test_a_folder_whose_name_reads_as_a_uri_part(tmp_path, template):
    """The schema check opens the file read-only through an SQLite URI: a '#' or '?' in the
    folder's name stays part of the path."""
    folder = tmp_path / "state #2 ?"
    store = _direct(folder)
    run = store.start_run("churn", "run", {})
    store.end_run(run, "FINISHED")
    assert isinstance(_direct(folder), SqliteStore)  # the existing store, checked again
