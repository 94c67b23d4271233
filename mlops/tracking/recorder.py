"""The recorder: a run's MLflow records, in order, on a background thread.

Tracking must never fail a run nor hold it up. Opening the store costs seconds (importing
mlflow, opening SQLite through SQLAlchemy), so the thread starts when the flow does and opens it
while the data loads and the model trains; the flow only queues records, as plain data (`Op`).
The first error of the store ends the recording: it becomes a warning (`new_problems`), the
remaining records are dropped, and the flow goes on.

When the flow ends before the store is even open (a re-run whose stages all hit the cache takes
less than importing mlflow), `close` does not wait: it hands the queued records to `handoff`
(a detached process that records them, `mlops.tracking.replay`), so a cached re-run costs one
small file. Otherwise `close` waits at most `timeout_s` for the queue; what is left is dropped.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from mlops.tracking.protocol import Store

# The store calls an `Op` may name; the ones marked True act on the run and get its id first.
OPERATIONS = {"start_run": False, "log": True, "log_files": True, "end_run": True,
              "set_champion": False}


@dataclass(frozen=True)
class Op:
    """One store call, as data: what it does (for the warning), the method and its arguments."""

    doing: str
    method: str
    kwargs: dict[str, Any] = field(default_factory=dict)


def _short(exc: BaseException, limit: int = 300) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text[:limit]}"


def apply(store: Store, op: Op, run_id: str | None) -> str | None:
    """Make the call `op` names on `store`; returns the run id (a new one after ``start_run``).
    A run call without a run is skipped: its run was never started."""
    if op.method not in OPERATIONS:
        raise ValueError(f"unknown tracking operation '{op.method}' ({op.doing})")
    if op.method == "start_run":
        return store.start_run(**op.kwargs)
    if OPERATIONS[op.method]:
        if run_id is not None:
            getattr(store, op.method)(run_id, **op.kwargs)
        return run_id
    kwargs = {**op.kwargs, "run_id": run_id} if op.method == "set_champion" else op.kwargs
    getattr(store, op.method)(**kwargs)
    return run_id


def stopped(doing: str, exc: BaseException) -> str:
    return (f"MLflow tracking stopped while {doing}: {_short(exc)}; the run goes on, its MLflow "
            "record is incomplete")


class Recorder:
    """Queues a run's records for one store, opened by `open_store` on the worker thread.

    Args:
        open_store: Builds the store (imports mlflow, opens the database or asks Azure ML).
        timeout_s: Longest wait for the run id, and for the queue when closing.
        handoff: Takes the records still queued when the flow ends before the store is open
            (a list of `Op` as dicts, and the run id so far); None: wait for them instead.
    """

    def __init__(self, open_store: Callable[[], Store], timeout_s: float,
                 handoff: Callable[[list[dict[str, Any]], str | None], str] | None = None):
        self.timeout_s = timeout_s
        self.run_id: str | None = None
        self.handed_to: str | None = None  # where `close` sent the records, if it did
        self._handoff = handoff
        self._problems: list[str] = []
        self._reported = 0
        self._failed = False
        self._opened = False
        self._handed_off = False
        self._state = threading.Lock()
        self._started = threading.Event()
        self._ops: queue.Queue[Op | None] = queue.Queue()
        self._thread = threading.Thread(
            target=self._work, args=(open_store,), name="mlflow-recorder", daemon=True
        )
        self._thread.start()

    def _fail(self, doing: str, exc: BaseException) -> None:
        self._failed = True
        self._problems.append(stopped(doing, exc))
        self._started.set()

    def _work(self, open_store: Callable[[], Store]) -> None:
        store = None
        try:
            store = open_store()
        except Exception as exc:  # noqa: BLE001 - any store error becomes a warning (module doc)
            self._fail("opening the store", exc)
        with self._state:
            if self._handed_off:
                return
            self._opened = True
        while (op := self._ops.get()) is not None:
            if store is not None and not self._failed:
                try:
                    self.run_id = apply(store, op, self.run_id)
                except Exception as exc:  # noqa: BLE001 - as above
                    self._fail(op.doing, exc)
                if op.method == "start_run":
                    self._started.set()

    def submit(self, op: Op) -> None:
        self._ops.put(op)

    def start(self, experiment: str, name: str, tags: dict[str, str]) -> None:
        self.submit(Op(f"starting run '{name}' in experiment '{experiment}'", "start_run",
                       {"experiment": experiment, "name": name, "tags": tags}))

    def log(self, doing: str, *, params: dict[str, str] | None = None,
            metrics: dict[str, float] | None = None, tags: dict[str, str] | None = None) -> None:
        self.submit(Op(doing, "log", {"params": params, "metrics": metrics, "tags": tags}))

    def log_files(self, doing: str, files: list[tuple[str, str]]) -> None:
        self.submit(Op(doing, "log_files", {"files": [list(f) for f in files]}))

    def end(self, doing: str, tags: dict[str, str], status: str) -> None:
        self.log(doing, tags=tags)
        self.submit(Op(doing, "end_run", {"status": status}))

    def mirror_champion(self, model_name: str, version: int, source: str) -> None:
        """Queue moving MLflow's `champion` alias to our `version` (mirror of the registry)."""
        self.submit(Op(f"moving MLflow's champion alias to {model_name} v{version}",
                       "set_champion",
                       {"model_name": model_name, "version": version, "source": source}))

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

    def _hand_off(self) -> bool:
        """Give the queued records to `handoff` if the store is not open yet."""
        with self._state:
            if self._opened or self._handoff is None:
                return False
            self._handed_off = True
        ops = []
        while not self._ops.empty():
            op = self._ops.get_nowait()
            if op is not None:
                ops.append(asdict(op))
        try:
            self.handed_to = self._handoff(ops, self.run_id)
        except Exception as exc:  # noqa: BLE001 - as in _work: tracking never fails the run
            self._problems.append(stopped(f"handing {len(ops)} record(s) off", exc))
        return True

    def close(self) -> list[str]:
        """Stop taking records: hand them off, or wait at most `timeout_s` for them.

        Returns:
            The warnings not handed out yet, including records dropped on the way out.
        """
        if self._hand_off():
            return self.new_problems()
        self._ops.put(None)
        self._thread.join(self.timeout_s)
        if self._thread.is_alive():
            self._problems.append(
                f"MLflow store still busy after {self.timeout_s:g} s (tracking.timeout_s): the "
                "last records of this run are written later or not at all"
            )
        return self.new_problems()
