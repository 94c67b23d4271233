"""The recorder: a run's MLflow calls, in order, on a background thread.

Tracking must never fail a run nor hold it up. Opening the store costs seconds (importing
mlflow, opening SQLite through SQLAlchemy), so the thread starts when the flow does and does it
while the data loads and the model trains; the flow only queues records. The first error of the
store ends the recording: it becomes a warning (`problems`), the remaining records are dropped,
and the flow goes on. `close` waits a bounded time for the queue; what is left is dropped.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from mlops.tracking.protocol import Store

logger = logging.getLogger(__name__)

Job = Callable[[Store], None]


def _short(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text[:limit]}"


class Recorder:
    """Queues a run's records for one store, opened by `open_store` on the worker thread.

    Args:
        open_store: Builds the store (imports mlflow, opens the database or asks Azure ML).
        timeout_s: Longest wait for the run id, and for the queue when closing.
    """

    def __init__(self, open_store: Callable[[], Store], timeout_s: float):
        self.timeout_s = timeout_s
        self.run_id: str | None = None
        self._problems: list[str] = []
        self._reported = 0
        self._failed = False
        self._started = threading.Event()
        self._jobs: queue.Queue[tuple[str, Job] | None] = queue.Queue()
        self._thread = threading.Thread(
            target=self._work, args=(open_store,), name="mlflow-recorder", daemon=True
        )
        self._thread.start()

    def _fail(self, doing: str, exc: BaseException) -> None:
        self._failed = True
        self._problems.append(f"MLflow tracking stopped while {doing}: {_short(exc)}; the run "
                              "goes on, its MLflow record is incomplete")
        self._started.set()

    def _work(self, open_store: Callable[[], Store]) -> None:
        store = None
        try:
            store = open_store()
        except Exception as exc:  # noqa: BLE001 - any store error becomes a warning (module doc)
            self._fail("opening the store", exc)
        while (item := self._jobs.get()) is not None:
            doing, job = item
            if store is not None and not self._failed:
                try:
                    job(store)
                except Exception as exc:  # noqa: BLE001 - as above
                    self._fail(doing, exc)

    def submit(self, doing: str, job: Job) -> None:
        """Queue `job`; `doing` names it in the warning if it fails."""
        self._jobs.put((doing, job))

    def start(self, experiment: str, name: str, tags: dict[str, str]) -> None:
        def job(store: Store) -> None:
            self.run_id = store.start_run(experiment, name, tags)
            self._started.set()

        self.submit(f"starting run '{name}' in experiment '{experiment}'", job)

    def on_run(self, doing: str, call: Callable[[Store, str], Any]) -> None:
        """Queue `call(store, run_id)`; dropped if no run was started (its failure, if any,
        is already a warning)."""

        def job(store: Store) -> None:
            if self.run_id is not None:
                call(store, self.run_id)

        self.submit(doing, job)

    def link_version(self, tags: dict[str, str]) -> None:
        """Queue the registered version's tags on the run (the run -> version link)."""
        self.on_run("linking the registered version", lambda s, rid: s.log(rid, tags=tags))

    def mirror_champion(self, model_name: str, version: int, source: str) -> None:
        """Queue moving MLflow's `champion` alias to our `version` (mirror of the registry)."""
        self.submit(
            f"moving MLflow's champion alias to {model_name} v{version}",
            lambda store: store.set_champion(model_name, version, source, self.run_id),
        )

    def wait_run_id(self) -> str | None:
        """The run's id once the store has it, waiting at most `timeout_s`; None if it failed
        or is late (then the warning says so)."""
        if not self._started.wait(self.timeout_s) and not self._failed:
            self._problems.append(
                f"MLflow run not started within {self.timeout_s:g} s (tracking.timeout_s): "
                "the registered version does not name it"
            )
        return self.run_id

    def new_problems(self) -> list[str]:
        """Warnings not handed out yet, for the caller to log in the run."""
        fresh = self._problems[self._reported:]
        self._reported = len(self._problems)
        return fresh

    def close(self) -> list[str]:
        """Stop taking records and wait at most `timeout_s` for the queued ones.

        Returns:
            The warnings not handed out yet, including records dropped on the way out.
        """
        self._jobs.put(None)
        self._thread.join(self.timeout_s)
        if self._thread.is_alive():
            self._problems.append(
                f"MLflow store still busy after {self.timeout_s:g} s (tracking.timeout_s): the "
                "last records of this run are written later or not at all"
            )
        return self.new_problems()
