"""Which store a spec's runs go to, and where that store keeps its artifacts."""

from __future__ import annotations

from pathlib import Path

from mlops.core.settings import Settings
from mlops.core.spec import load_spec
from mlops.tracking.backend import tracking_target
from tests.conftest import write_spec


def _target(tmp_path: Path, uri: str | None):
    spec = load_spec(write_spec(tmp_path, "t", {"tracking": {"uri": uri}}))
    return tracking_target(spec, Settings(state_dir=tmp_path / "state"))


def test_a_sqlite_store_keeps_its_artifacts_beside_its_database(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    named = _target(tmp_path, f"sqlite:///{tmp_path}/db/runs.db")
    assert named.artifact_location == (tmp_path / "db" / "artifacts").as_uri()
    relative = _target(tmp_path, "sqlite:///rel/runs.db?timeout=20")
    assert relative.uri == f"sqlite:///{tmp_path}/rel/runs.db?timeout=20"
    assert relative.artifact_location == (tmp_path / "rel" / "artifacts").as_uri()


def test_the_default_and_a_server_keep_their_own_artifact_roots(tmp_path):
    default = _target(tmp_path, None)
    state = (tmp_path / "state").resolve()
    assert default.uri == f"sqlite:///{state / 'mlflow' / 'mlflow.db'}"
    assert default.artifact_location == (state / "mlflow" / "artifacts").as_uri()
    assert _target(tmp_path, "http://mlflow:5000").artifact_location is None
