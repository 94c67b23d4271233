"""The batch-scoring flow on a Dask LocalCluster of processes equals the local runner's run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from flows import _task_runners
from flows._task_runners import local_threads, open_runner, task_runner_for
from mlops.batch.manifest import read_manifest
from mlops.core.errors import SpecError
from tests.mlops.batch._batch import ROOT, make_champion, write_partitions


def _scores(folder) -> pd.DataFrame:
    table = pq.read_table(folder).to_pandas().drop(columns="scored_at")
    return table.sort_values("customer_id", ignore_index=True)


def _pids(output) -> set[str]:
    return {p["worker"].rsplit(":", 1)[1] for p in read_manifest(str(output))["partitions"]}


@pytest.mark.service
@pytest.mark.usefixtures("prefect_server")
def test_dask_processes_write_what_the_local_runner_writes(tmp_path, monkeypatch):
    """The bundle carries a snapshot of the model's fast path, so on a machine that never
    loaded the model the cluster's workers score from it, and their forkserver does not
    import scikit-learn."""
    from flows.batch_scoring import batch_scoring  # noqa: PLC0415 - Prefect after the harness

    monkeypatch.setenv("MLOPS_FASTPATH_CACHE", str(tmp_path / "no snapshot yet"))
    made = _record_clusters(monkeypatch)
    champion = make_champion(tmp_path / "model")
    folder = tmp_path / "in"
    frame = write_partitions(folder, parts=4, rows=1200)
    dask = batch_scoring(str(folder), str(tmp_path / "dask"), champion.spec_path,
                         task_runner="dask", dask_workers=2)
    local = batch_scoring(str(folder), str(tmp_path / "local"), champion.spec_path)
    assert local["rows"] == dask["rows"] == len(frame) and dask["partitions"] == 4
    left, right = _scores(tmp_path / "local"), _scores(tmp_path / "dask")
    assert left["customer_id"].is_unique and len(left) == len(frame)
    pd.testing.assert_frame_equal(left, right)
    assert _pids(tmp_path / "local") == {str(os.getpid())}
    workers = _pids(tmp_path / "dask")
    assert len(workers) == 2 and str(os.getpid()) not in workers  # two other processes
    assert len(made) == 1 and "sklearn" not in made[0].preloaded


def _record_clusters(monkeypatch) -> list:
    from mlops.batch import cluster  # noqa: PLC0415 - dask only in these tests

    made: list = []

    class Recorded(cluster.TemporaryCluster):
        def __init__(self, workers: int, load_model: bool = True) -> None:
            super().__init__(workers, load_model)
            made.append(self)

    monkeypatch.setattr(cluster, "TemporaryCluster", Recorded)
    return made


def _closed(cluster) -> bool:
    import psutil  # noqa: PLC0415

    inner = cluster._cluster
    workers = [w.process.pid for w in inner.workers.values() if w.process is not None]
    return inner.status.name == "closed" and not any(psutil.pid_exists(p) for p in workers)


@pytest.mark.service
@pytest.mark.usefixtures("prefect_server")
def test_a_run_that_fails_before_scoring_starts_no_cluster(tmp_path, monkeypatch):
    """The cluster starts once the model is resolved; a run that fails there starts none."""
    from flows.batch_scoring import batch_scoring  # noqa: PLC0415 - Prefect after the harness

    made = _record_clusters(monkeypatch)
    champion = make_champion(tmp_path / "model")
    write_partitions(tmp_path / "in", parts=1, rows=100)
    state = batch_scoring(str(tmp_path / "in"), str(tmp_path / "out"), champion.spec_path,
                          version=7, task_runner="dask", dask_workers=1, return_state=True)
    assert state.is_failed() and "has no version 7" in state.message
    assert made == []


@pytest.mark.service
@pytest.mark.usefixtures("prefect_server")
def test_a_failed_worker_preload_ends_with_the_partitions_own_error(tmp_path, monkeypatch):
    """The workers' preload cannot load the model (its file no longer matches its digest);
    that fails no worker by itself: each partition loads it again and fails naming its file
    and the bundle's error, and the cluster is closed."""
    from flows.batch_scoring import batch_scoring  # noqa: PLC0415 - Prefect after the harness

    made = _record_clusters(monkeypatch)
    champion = make_champion(tmp_path / "model")
    write_partitions(tmp_path / "in", parts=2, rows=200)
    model_file = Path(champion.model.url) / "model.skops"
    model_file.write_bytes(model_file.read_bytes() + b"tampered")
    state = batch_scoring(str(tmp_path / "in"), str(tmp_path / "out"), champion.spec_path,
                          task_runner="dask", dask_workers=2, return_state=True)
    assert state.is_failed()
    assert "2 of 2 partition(s) not scored" in state.message
    assert "part-0.parquet" in state.message and "does not match the manifest" in state.message
    assert len(made) == 1 and _closed(made[0])


@pytest.mark.parametrize(("kind", "address", "workers", "problem"), [
    ("spark", None, 2, "task_runner 'spark' is unknown"),
    ("local", "tcp://10.0.0.1:8786", 2, "needs task_runner dask"),
    ("dask", None, 0, "dask_workers is 0"),
])
def test_a_bad_runner_choice_is_named(kind, address, workers, problem):
    with pytest.raises(SpecError, match=problem), open_runner(kind, address, workers):
        pass


def test_dask_runner_settings():
    assert task_runner_for("dask", "tcp://10.0.0.1:8786").address == "tcp://10.0.0.1:8786"
    with pytest.raises(SpecError, match="needs a dask_address"):
        task_runner_for("dask")
    local = task_runner_for("local")
    assert type(local).__name__ == "ThreadPoolTaskRunner"
    # one thread per core, not Prefect's unbounded default (every partition held at once)
    assert local._max_workers == local_threads() == len(os.sched_getaffinity(0))


@pytest.mark.parametrize(("cores", "partitions", "threads"),
                         [(2, 1, 2), (2, 2, 1), (2, 9, 1), (4, 2, 2), (4, 3, 1), (1, 5, 1)])
def test_local_partitions_share_the_cores_between_their_tree_walks(monkeypatch, cores,
                                                                   partitions, threads):
    monkeypatch.setattr(_task_runners, "local_threads", lambda: cores)
    assert _task_runners.predict_threads("local", partitions) == threads
    assert _task_runners.predict_threads("dask", partitions) is None  # OMP_NUM_THREADS=1


def test_the_flow_imports_without_dask_or_the_scoring_core():
    """On a cluster the flow's process only lists and collects: it never reads a row, so it
    does not import pandas (about 0.2 s of a run's start) nor scikit-learn."""
    code = ("import sys, flows.batch_scoring; print(sorted(m for m in ('dask', 'distributed', "
            "'prefect_dask', 'pandas', 'sklearn', 'numba') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True)
    assert out.stdout.strip() == "[]"


_ON_A_CLUSTER = """
import json, sys
from flows.batch_scoring import batch_scoring
args = json.loads(sys.argv[1])
result = batch_scoring(args["input"], args["output"], args["spec"], task_runner="dask",
                       dask_address=args["address"])
print(json.dumps([result["rows"], sorted(m for m in ("pandas", "sklearn") if m in sys.modules)]))
"""


@pytest.mark.service
@pytest.mark.usefixtures("prefect_server")
def test_a_run_on_a_running_cluster_reads_no_rows_in_the_flows_process(tmp_path):
    """The flow's process resolves the model, lists and collects; the workers read the rows.
    So a run's whole path there (the registry, the plan, the manifest) imports no pandas."""
    from prefect.settings import PREFECT_API_URL  # noqa: PLC0415

    from mlops.batch.cluster import TemporaryCluster  # noqa: PLC0415 - dask only in these tests

    champion = make_champion(tmp_path / "model")
    frame = write_partitions(tmp_path / "in", parts=2, rows=300)
    running = TemporaryCluster(1, load_model=False)  # the bundle carries a snapshot
    try:
        args = {"input": str(tmp_path / "in"), "output": str(tmp_path / "out"),
                "spec": champion.spec_path, "address": running.address()}
        out = subprocess.run([sys.executable, "-c", _ON_A_CLUSTER, json.dumps(args)], cwd=ROOT,
                             capture_output=True, text=True, timeout=300, env={
                                 **os.environ, "PYTHONPATH": str(ROOT),
                                 "PREFECT_API_URL": PREFECT_API_URL.value()})
    finally:
        running.close()
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout.splitlines()[-1]) == [len(frame), []]


def test_the_temporary_clusters_workers_keep_no_profile_and_wake_seldom():
    """Dask's statistical profiler kept a call tree per task for up to 1,000 s: each worker
    grew by about 1,000 dicts per partition, so memory rose with the input's length. And every
    server's periodic checks (its event loop's tick every 20 ms, memory every 100 ms) took
    about a tenth of a core from an idle cluster of two workers."""
    from distributed import Client  # noqa: PLC0415 - dask only in these tests

    from mlops.batch.cluster import TemporaryCluster  # noqa: PLC0415

    def intervals(server) -> dict[str, float]:
        return {name: server.periodic_callbacks[name].callback_time
                for name in ("tick", "monitor", "memory_monitor")
                if name in server.periodic_callbacks}

    cluster = TemporaryCluster(1, load_model=False)
    try:
        with Client(cluster.address(), set_as_default=False) as client:
            client.gather(client.map(sum, [[i, 1] for i in range(20)]))
            seen = client.run(lambda dask_worker: (
                "profile-cycle" in dask_worker.periodic_callbacks,
                len(dask_worker.profile_keys) + len(dask_worker.profile_keys_history)))
            workers = list(client.run(lambda dask_worker: intervals(dask_worker)).values())
            scheduler = client.run_on_scheduler(lambda dask_scheduler: intervals(
                dask_scheduler))
            nannies = [intervals(nanny) for nanny in cluster._cluster.workers.values()]
    finally:
        cluster.close()
    slow = {"tick": 500, "monitor": 2000, "memory_monitor": 500}
    assert workers == nannies == [slow]
    assert scheduler == {"tick": 500, "monitor": 2000}
    assert list(seen.values()) == [(False, 0)]
