"""The task runner a batch run maps its partitions on: threads here, or a Dask cluster.

`local` is Prefect's thread pool in the flow's process, with one thread per core this process
may use (`local_threads`): Prefect's own default has no bound, so every partition of a large
input would be read and held at once and memory would grow with the input. Two threads on two
cores overlap one partition's numpy and pandas steps with another's tree walk, which releases
the GIL. `dask` is prefect-dask's
`DaskTaskRunner`: on the scheduler at `dask_address` when one is given (a cluster that outlives
the run, with its own dashboard), else on a temporary `distributed.LocalCluster` of
`dask_workers` processes with one thread each, started for the run and closed after it. One
thread per process because a partition's predict already uses a core; processes, not threads,
because the scoring core holds the GIL between its numpy calls. prefect-dask (and dask) are
imported only when `dask` is chosen.
"""

from __future__ import annotations

import os
from typing import Literal

from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

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


def task_runner_for(kind: RunnerKind, dask_address: str | None = None,
                    dask_workers: int = 2) -> TaskRunner:
    """The runner for `kind`.

    Raises:
        SpecError: an unknown kind, a Dask address with the local runner, or fewer than one
            worker.
    """
    if kind not in ("local", "dask"):
        raise SpecError(f"task_runner '{kind}' is unknown; use local or dask")
    if kind == "local":
        if dask_address:
            raise SpecError(f"dask_address {dask_address} needs task_runner dask, not local")
        return ThreadPoolTaskRunner(max_workers=local_threads())
    from prefect_dask import DaskTaskRunner  # noqa: PLC0415 - dask only when chosen

    if dask_address:
        return DaskTaskRunner(address=dask_address)
    if dask_workers < 1:
        raise SpecError(f"dask_workers is {dask_workers}; a cluster needs at least 1 worker")
    return DaskTaskRunner(cluster_kwargs={
        "n_workers": dask_workers, "threads_per_worker": 1, "processes": True,
        "dashboard_address": None,
    })
