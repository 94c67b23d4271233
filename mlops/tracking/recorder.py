"""The recorder: a run's MLflow records, in order, from a background thread.

Tracking must never fail a run nor hold it up. Opening the store costs seconds (importing
mlflow, opening SQLite through SQLAlchemy), so the store is opened when the flow starts, while
the data loads and the model trains, in a process of its own (`mlops.tracking.process`); this
thread only passes it the records, as plain data (`Op`). The first error of the store ends the
recording: it becomes a warning (`new_problems`), the remaining records are dropped, and the
flow goes on.

When the flow ends before the store is even open (a re-run whose stages all hit the cache takes
less than importing mlflow), `close` does not wait: it hands the queued records to `handoff`
(the recorder process, which records them after the flow has gone), so a cached re-run costs a
few lines in a pipe. When the store is open, `close` waits at most `timeout_s` for the record
in flight and for the rest to be sent, not recorded (`leave`: the recorder process answers no
more, and records them after the flow has gone if need be); a store without `leave` is waited
for until it has recorded the queue, at most `timeout_s`. What is left then is dropped. If the
recorder process ends without answering (killed, crashed), that is a warning too, and the
records it did not take go to `rescue` (`mlops.tracking.replay`) when the flow ends.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from mlops.core.errors import RecorderError, RecorderGoneError
from mlops.tracking.protocol import Store

Handoff = Callable[[list[dict[str, Any]], str | None], str]
Leave = Callable[[], str]

# The store calls an `Op` may name; the ones marked True act on the run and get its id first.
OPERATIONS = {"start_run": False, "log": True, "log_files": True, "end_run": True,
              "set_champion": False}


@dataclass(frozen=True)
class Op:
    """One store call, as data: what it does (for the warning), the method and its arguments."""

    doing: str
    method: str
    kwargs: dict[str, Any] = field(default_factory=dict)


def short(exc: BaseException, limit: int = 300) -> str:
    """The error's type and its message on one line, cut at `limit`; what the recorder process
    reported is already in that form."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if type(exc) is RecorderError:
        return text[:limit]
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
    return (f"MLflow tracking stopped while {doing}: {short(exc)}; the run goes on, its MLflow "
            "record is incomplete")


def gone(doing: str, exc: BaseException) -> str:
    return (f"MLflow recorder process ended while {doing}: {short(exc)}; the run goes on, its "
            "remaining records go to another process when it ends")


class Recorder:
    """Queues a run's records for one store, opened by `open_store` on the worker thread.

    Args:
        open_store: The store, once open (the recorder process's answer that it opened MLflow's).
        timeout_s: Longest wait for the run id, and for the queue when closing.
        handoff: Takes the records still queued when the flow ends before the store is open
            (a list of `Op` as dicts, and the run id so far), returns where they went; None:
            wait for them instead.
        rescue: Takes, the same way, the records a store that ended without answering
            (`RecorderGoneError`) did not take, or that `handoff` refused; None: drop them
            with a warning.
        leave: Called when the flow ends with the store open: from then on the store only
            takes records without answering, and `close` waits until they are sent, not
            until they are recorded nor until the store closes; returns where they go.
            None: `close` waits for the store to record them and close.
    """

    def __init__(self, open_store: Callable[[], Store], timeout_s: float,
                 handoff: Handoff | None = None, rescue: Handoff | None = None,
                 leave: Leave | None = None):
        self.timeout_s = timeout_s
        self.run_id: str | None = None
        self.handed_to: str | None = None  # where `close` sent the records, if it did
        self._handoff = handoff
        self._rescue = rescue
        self._leave = leave
        self._sent = threading.Event()  # every record passed on (or dropped): the queue is done
        self._orphans: list[Op] | None = None  # records for `rescue`, once the store is gone
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

    def _lose(self, doing: str, exc: BaseException, op: Op | None = None) -> None:
        """A store error stops the recording; a store that is gone leaves its records to
        `rescue`."""
        if isinstance(exc, RecorderGoneError) and self._rescue is not None:
            self._orphans = [op] if op is not None else []
            self._problems.append(gone(doing, exc))
            self._started.set()
        else:
            self._fail(doing, exc)

    def _work(self, open_store: Callable[[], Store]) -> None:
        store = None
        try:
            store = open_store()
        except Exception as exc:  # noqa: BLE001 - any store error becomes a warning (module doc)
            self._lose("opening the store", exc)
        with self._state:  # a hand-off happens whole, before this or not at all
            handed_off = self._handed_off
            self._opened = True
        if not handed_off:
            self._record(store)
        self._sent.set()
        if store is not None:
            store.close()

    def _record(self, store: Store | None) -> None:
        while (op := self._ops.get()) is not None:
            if self._orphans is not None:
                self._orphans.append(op)
            elif store is not None and not self._failed:
                try:
                    self.run_id = apply(store, op, self.run_id)
                except Exception as exc:  # noqa: BLE001 - as above
                    self._lose(op.doing, exc, op)
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

    def _give(self, to: Handoff | None, ops: list[dict[str, Any]]) -> None:
        """Hand `ops` to `to`, or to `rescue` if `to` cannot take them."""
        try:
            if to is None:
                raise RecorderError("no process to take them")
            self.handed_to = to(ops, self.run_id)
        except Exception as exc:  # noqa: BLE001 - as in _work: tracking never fails the run
            if isinstance(exc, RecorderError) and to is not self._rescue:
                self._give(self._rescue, ops)
            else:
                self._problems.append(stopped(f"handing {len(ops)} record(s) off", exc))

    def _hand_off(self) -> bool:
        """Give the queued records to `handoff` if the store is not open yet; under the lock,
        so the thread finds them handed off whole once the store opens."""
        with self._state:
            if self._opened or self._handoff is None:
                return False
            self._handed_off = True
            ops = []
            while not self._ops.empty():
                op = self._ops.get_nowait()
                if op is not None:
                    ops.append(asdict(op))
            self._give(self._handoff, ops)
        return True

    def close(self) -> list[str]:
        """Stop taking records: hand them off, or wait at most `timeout_s` for them.

        Returns:
            The warnings not handed out yet, including records dropped on the way out.
        """
        if self._hand_off():
            return self.new_problems()
        where = self._leave() if self._leave is not None else None
        pending = not self._ops.empty()
        self._ops.put(None)
        if where is not None:
            done = self._sent.wait(self.timeout_s)
        else:
            self._thread.join(self.timeout_s)
            done = not self._thread.is_alive()
        if not done:
            self._problems.append(
                f"MLflow store still busy after {self.timeout_s:g} s (tracking.timeout_s): the "
                "last records of this run are written later or not at all"
            )
        elif self._orphans:
            self._give(self._rescue, [asdict(op) for op in self._orphans])
        elif pending and where is not None:
            self.handed_to = where
        return self.new_problems()
