"""The batch-scoring flow: good partitions complete, a bad one is listed and fails the run."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from flows.batch_scoring import batch_scoring
from mlops.batch.manifest import read_manifest
from tests.mlops.batch._batch import make_champion, write_partitions

pytestmark = [pytest.mark.service, pytest.mark.usefixtures("prefect_server")]


def test_a_bad_partition_fails_the_run_after_the_others_complete(tmp_path):
    champion = make_champion(tmp_path / "model")
    folder = tmp_path / "in"
    write_partitions(folder, parts=2, rows=1500)
    (folder / "part-9.parquet").write_bytes(b"PAR1 not a parquet file")
    out = tmp_path / "out"
    state = batch_scoring(str(folder), str(out), champion.spec_path, return_state=True)
    assert state.is_failed()
    assert "1 of 3 partition(s) not scored" in state.message
    assert "part-9.parquet" in state.message
    assert len(pq.read_table(out)) == 3000
    manifest = read_manifest(str(out))
    assert manifest["rows"] == 3000 and manifest["model"]["version"] == "1"
    assert [m["input"].rsplit("/", 1)[-1] for m in manifest["missing"]] == ["part-9.parquet"]
    assert "Parquet magic bytes" in manifest["missing"][0]["error"]

    (folder / "part-9.parquet").unlink()
    again = batch_scoring(str(folder), str(out), champion.spec_path, return_state=True)
    assert again.is_completed()
    result = again.result()
    assert (result["rows"], result["partitions"]) == (3000, 2)
    assert all(p["skipped"] for p in read_manifest(str(out))["partitions"])


def test_no_champion_is_a_clear_error(tmp_path):
    champion = make_champion(tmp_path / "model")
    write_partitions(tmp_path / "in", parts=1, rows=100)
    state = batch_scoring(str(tmp_path / "in"), str(tmp_path / "out"), champion.spec_path,
                          version=7, return_state=True)
    assert state.is_failed()
    assert "has no version 7" in state.message


@pytest.mark.parametrize("carried", [True, False], ids=["snapshot in the bundle", "none"])
def test_the_local_runner_loads_the_model_while_the_tasks_are_set_up(
        tmp_path, monkeypatch, carried):
    """The model is read once, on the preload thread, not by the first partitions: from the
    snapshot its bundle carries, or loaded when the bundle has none."""
    import threading

    from mlops.batch import run

    monkeypatch.setenv("MLOPS_FASTPATH_CACHE", "off")
    champion = make_champion(tmp_path / "model", fast_path=carried)
    write_partitions(tmp_path / "in", parts=2, rows=300)
    reads: list[tuple[str, str]] = []

    def recorded(name: str):
        original = getattr(run, name)

        def recording(*args, **kwargs):
            reads.append((name, threading.current_thread().name))
            return original(*args, **kwargs)
        return recording

    for name in ("read_bundle_files", "load_bundle"):
        monkeypatch.setattr(run, name, recorded(name))
    state = batch_scoring(str(tmp_path / "in"), str(tmp_path / "out"), champion.spec_path,
                          return_state=True)
    assert state.is_completed()
    read = "read_bundle_files" if carried else "load_bundle"  # the files are read once
    assert reads == [(read, "batch-preload")]
