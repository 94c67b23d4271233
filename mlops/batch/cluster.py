"""A temporary Dask cluster for one batch run, started while the run prepares its partitions.

`TemporaryCluster` starts a `distributed.LocalCluster` of worker processes (one thread each;
its HTTP routes on a free port, so that two runs on one machine do not collide) on a thread,
so the processes' start overlaps the flow reading its spec, resolving the model and listing
the partitions. The workers are forked from a forkserver that imported the scoring stack once
(`FORKSERVER_PRELOAD`: pyarrow, Prefect's task engine, the tree kernel compiled...; and
scikit-learn and skops when the workers will load the model file), instead of each
worker importing it again: on two cores the workers' imports competed with each other and with
the flow, and the pages of those libraries stay shared copy-on-write. The forkserver starts
inside the nanny's `pre-spawn-environ` (OMP_NUM_THREADS=1), so its children keep it.
`preload` registers `ScorerPreload` with the cluster: each worker, as it joins, starts loading
the run's scorer and the compiled tree kernel on a thread (`mlops.batch.run.warm_scorer`), so the
first partition it receives finds them ready. A worker whose preload fails does not fail by
itself: its partitions load the model again and raise with their own context. `close` waits
for the start and the registration and closes the cluster; the caller calls it also when the
run fails. Imported only when the Dask runner is chosen.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import dask
from distributed import Client, LocalCluster, WorkerPlugin
from distributed.utils import get_mp_context

from mlops.batch.partitions import ModelRef
from mlops.core.errors import ClusterError

logger = logging.getLogger(__name__)
# The workers' statistical profiler samples every thread's stack 100 times a second and keeps
# a call tree per task for up to `distributed.admin.low-level-log-length` cycles of a second:
# on a long run it grew each worker by about 1,000 Python dicts per partition (tens of MiB over
# 25 partitions), and its samples cost CPU the scoring needs.
# Each server (scheduler, nannies, workers) also wakes 50 times a second to time its own event
# loop (`tick`), each nanny and worker checks its memory 10 times a second and samples the
# machine twice a second: an idle cluster of two workers took about 1.0 s of CPU per 10 s,
# 0.16 s with the intervals below, which still warn of a blocked loop, react to a worker's
# memory within half a second and feed the dashboard's graphs.
CLUSTER_CONFIG = {"distributed.worker.multiprocessing-method": "forkserver",
                  "distributed.worker.profile.enabled": False,
                  "distributed.admin.tick.interval": "500ms",
                  "distributed.worker.memory.monitor-interval": "500ms",
                  "distributed.admin.system-monitor.interval": "2s"}
FORKSERVER_PRELOAD = ["distributed", "numpy", "pandas", "pyarrow", "numba",
                      "prefect.task_engine", "prefect_dask", "mlops.batch.run",
                      "mlops.batch.warm_kernel"]
# What loading a model file needs, preloaded only when the workers will load the model (no
# snapshot of its fast path on this machine, `mlops.batch.fast_cache`): scikit-learn, and
# skops.io, which lists every scikit-learn estimator and every numpy and scipy ufunc when it is
# imported (about 1.3 s of CPU beyond scikit-learn's own import), paid once here instead of
# once per worker.
MODEL_LOADING_PRELOAD = ["sklearn", "skops.io"]


def _warm(model: ModelRef, probabilities: bool, fast: bool) -> None:
    from mlops.batch.run import warm_scorer  # noqa: PLC0415 - imports scikit-learn, off the loop

    warm_scorer(model, probabilities, fast)


class ScorerPreload(WorkerPlugin):
    """Loads the run's scorer in each worker as it joins, on a thread: the worker's event
    loop goes on answering the scheduler meanwhile."""

    name = "mlops-batch-scorer-preload"

    def __init__(self, model: ModelRef, probabilities: bool, fast: bool) -> None:
        self.model, self.probabilities, self.fast = model, probabilities, fast

    def setup(self, worker: Any) -> None:
        threading.Thread(target=_warm, args=(self.model, self.probabilities, self.fast),
                         name="batch-worker-preload", daemon=True).start()


class TemporaryCluster:
    """A LocalCluster of `workers` processes, started on a thread from construction on."""

    def __init__(self, workers: int, load_model: bool = True) -> None:
        """Start the cluster; `load_model`: the workers will load a model file (see
        `MODEL_LOADING_PRELOAD`)."""
        self.workers = workers
        self.preloaded = FORKSERVER_PRELOAD + (MODEL_LOADING_PRELOAD if load_model else [])
        self._cluster: LocalCluster | None = None
        self._error: BaseException | None = None
        self._registering: threading.Thread | None = None
        self._starting = threading.Thread(target=self._start, name="dask-cluster-start",
                                          daemon=True)
        self._starting.start()

    def _start(self) -> None:
        try:
            with dask.config.set(CLUSTER_CONFIG):
                get_mp_context().set_forkserver_preload(self.preloaded)
                self._cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1,
                                             processes=True, dashboard_address=":0")
        except Exception as exc:  # noqa: BLE001 - raised again by `address`
            self._error = exc

    def address(self) -> str:
        """The scheduler's address, once the cluster has started.

        Raises:
            ClusterError: the cluster did not start (with the cause).
        """
        self._starting.join()
        if self._cluster is None:
            raise ClusterError(f"the temporary Dask cluster of {self.workers} worker "
                               f"process(es) did not start: {self._error}") from self._error
        return self._cluster.scheduler_address

    def preload(self, model: ModelRef, probabilities: bool, fast: bool) -> None:
        """Have every worker load `model`'s scorer as it joins (see `ScorerPreload`); returns
        at once, the registration waits for the cluster on a thread."""

        def register() -> None:
            self._starting.join()
            if self._cluster is None:
                return  # `address` raises the start's error
            with Client(self._cluster.scheduler_address, set_as_default=False) as client:
                client.register_plugin(ScorerPreload(model, probabilities, fast))

        self._registering = threading.Thread(target=register, name="dask-preload-register",
                                             daemon=True)
        self._registering.start()

    def close(self) -> None:
        """Close the cluster (after its start and the preload's registration end)."""
        self._starting.join()
        if self._registering is not None:
            self._registering.join()
        if self._cluster is not None:
            self._cluster.close()
            logger.debug("Closed the temporary Dask cluster at %s",
                         self._cluster.scheduler_address)
