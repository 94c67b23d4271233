"""The task runner a batch run maps its partitions on: threads here, or a Dask cluster.

`local` is Prefect's thread pool in the flow's process, with one thread per core this process
may use (`local_threads`): Prefect's own default has no bound, so every partition of a large
input would be read and held at once and memory would grow with the input. Two threads on two
cores overlap one partition's numpy and pandas steps with another's tree walk, which releases
the GIL. `dask` is prefect-dask's
`DaskTaskRunner`: on the scheduler at `dask_address` when one is given (a cluster that outlives
the run, with its own dashboard), else on a temporary `distributed.LocalCluster` of
`dask_workers` processes with one thread each (`mlops.batch.cluster.TemporaryCluster`), started
in the background once the run has resolved its model, its workers loading the model as they
join, and closed when the run ends (`open_runner`). One
thread per process because a partition's predict already uses a core; processes, not threads,
because the scoring core holds the GIL between its numpy calls. prefect-dask (and dask) are
imported only when `dask` is chosen.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from mlops.batch.partitions import ModelRef
from mlops.core.errors import SpecError

RunnerKind = Literal["local", "dask"]


def local_threads() -> int:
    """Threads of the local runner: the cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
        os.cpu_count() or 1)


def predict_threads(kind: RunnerKind, partitions: int) -> int | None:
    """OpenMP threads per partition's predict: the cores shared by the partitions the local
    runner scores at once; None for Dask, whose workers start with OMP_NUM_THREADS=1."""
    if kind != "local":
        return None
    return max(1, local_threads() // max(1, min(local_threads(), partitions)))


def task_runner_for(kind: RunnerKind, dask_address: str | None = None) -> TaskRunner:
    """The local runner, or a Dask runner on the scheduler at `dask_address`.

    Raises:
        SpecError: an unknown kind, a Dask address with the local runner, or dask without one
            (a temporary cluster is `Runner`'s).
    """
    _check(kind, dask_address)
    if kind == "local":
        return ThreadPoolTaskRunner(max_workers=local_threads())
    if not dask_address:
        raise SpecError("task_runner dask needs a dask_address here; open_runner starts a "
                        "temporary cluster without one")
    from prefect_dask import DaskTaskRunner  # noqa: PLC0415 - dask only when chosen

    return DaskTaskRunner(address=dask_address)


def _check(kind: RunnerKind, dask_address: str | None) -> None:
    if kind not in ("local", "dask"):
        raise SpecError(f"task_runner '{kind}' is unknown; use local or dask")
    if kind == "local" and dask_address:
        raise SpecError(f"dask_address {dask_address} needs task_runner dask, not local")


class Runner:
    """Where one batch run scores its partitions, opened at the run's start (`open_runner`).

    With a temporary Dask cluster, `preload` starts the cluster in the background (once the
    model is known, since it decides what the workers' forkserver imports) and has its workers
    load the model as they join; the task runner then points at it.
    """

    def __init__(self, kind: RunnerKind, dask_address: str | None, dask_workers: int) -> None:
        _check(kind, dask_address)
        self.kind, self._address = kind, dask_address
        if kind == "dask" and not dask_address and dask_workers < 1:
            raise SpecError(f"dask_workers is {dask_workers}; a cluster needs at least 1 worker")
        self._workers = dask_workers
        self._cluster: Any = None

    @property
    def _temporary(self) -> bool:
        return self.kind == "dask" and not self._address

    def _start_cluster(self, load_model: bool) -> Any:
        from mlops.batch.cluster import TemporaryCluster  # noqa: PLC0415 - dask only here

        self._cluster = TemporaryCluster(self._workers, load_model)
        return self._cluster

    def preload(self, model: ModelRef, probabilities: bool, fast: bool) -> None:
        """Start loading the model where the partitions will be scored: on a thread of this
        process (local); in each worker of a temporary cluster, which starts now (its
        forkserver imports scikit-learn and skops only if neither this machine nor the bundle
        has a snapshot of the model's fast path, `mlops.batch.run.snapshot_available`); or
        nowhere (a cluster at `dask_address` is not this run's to change)."""
        if self.kind == "dask" and not self._temporary:
            return  # the flow's process imports no pandas (`mlops.batch.run`) on this path
        from mlops.batch import run  # noqa: PLC0415

        if self.kind == "local":
            run.preload(model, probabilities, fast)
        else:
            snapshot = fast and run.snapshot_available(model)
            self._start_cluster(load_model=not snapshot).preload(model, probabilities, fast)

    def task_runner(self) -> TaskRunner:
        """The task runner for the partitions' subflow (waits for the cluster's start; starts
        a temporary one if `preload` did not).

        Raises:
            ClusterError: the temporary cluster did not start.
        """
        if not self._temporary:
            return task_runner_for(self.kind, self._address)
        cluster = self._cluster or self._start_cluster(load_model=True)
        return task_runner_for(self.kind, cluster.address())

    def close(self) -> None:
        if self._cluster is not None:
            self._cluster.close()


@contextmanager
def open_runner(kind: RunnerKind, dask_address: str | None = None,
                dask_workers: int = 2) -> Iterator[Runner]:
    """A `Runner`, closed (its temporary cluster with it) when the block ends, also on error.

    Raises:
        SpecError: an unknown kind, a Dask address with the local runner, or fewer than one
            worker.
    """
    runner = Runner(kind, dask_address, dask_workers)
    try:
        yield runner
    finally:
        runner.close()
