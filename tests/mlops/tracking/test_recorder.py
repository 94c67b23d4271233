"""The recorder: records in order on its own thread; a store that fails or hangs becomes a
warning and a bounded wait, never an error in the caller; a store not open yet when the flow
ends gets its records through a hand-off instead of a wait; a store that is gone leaves the
records it did not take to a rescue."""

from __future__ import annotations

import threading

from mlops.core.errors import RecorderError, RecorderGoneError
from mlops.tracking.recorder import Op, Recorder, apply


class Store:
    """A store that keeps what it is sent; `hold` blocks every call until it is set."""

    def __init__(self, fail_on: str | None = None, hold: threading.Event | None = None,
                 error: type[Exception] = ConnectionError):
        self.calls: list[tuple] = []
        self.fail_on = fail_on
        self.hold = hold
        self.error = error
        self.closed = False

    def opened(self) -> Store:
        """This store, once `hold` allows (opening a store is what takes seconds)."""
        if self.hold is not None:
            self.hold.wait()
        return self

    def _call(self, name: str, *args) -> None:
        if self.hold is not None:
            self.hold.wait()
        if name == self.fail_on:
            raise self.error(f"{name}: connection refused")
        self.calls.append((name, *args))

    def start_run(self, experiment, name, tags):
        self._call("start_run", experiment, name)
        return "run-1"

    def log(self, run_id, *, params=None, metrics=None, tags=None):
        self._call("log", run_id, params, metrics, tags)

    def log_files(self, run_id, files):
        self._call("log_files", run_id, files)

    def end_run(self, run_id, status):
        self._call("end_run", run_id, status)

    def set_champion(self, model_name, version, source, run_id):
        self._call("set_champion", model_name, version, run_id)

    def close(self):
        self.closed = True


def test_records_go_in_order_and_name_the_run():
    store = Store()
    recorder = Recorder(lambda: store, timeout_s=5)
    recorder.start("churn", "a-run", {})
    recorder.log("params", params={"a": "1"})
    assert recorder.wait_run_id() == "run-1"
    recorder.log("link", tags={"mlops.model_version": "3"})
    recorder.mirror_champion("churn", 3, "/registry/churn/3")
    recorder.end("end", {"mlops.outcome": "promoted"}, "FINISHED")
    assert recorder.close() == []
    assert [c[0] for c in store.calls] == [
        "start_run", "log", "log", "set_champion", "log", "end_run"]
    assert store.calls[2][4] == {"mlops.model_version": "3"}
    assert store.calls[3] == ("set_champion", "churn", 3, "run-1")
    assert store.calls[5] == ("end_run", "run-1", "FINISHED")
    assert store.closed  # the recorder process's input ends with the run


def test_records_without_a_run_are_dropped_quietly():
    store = Store()
    recorder = Recorder(lambda: store, timeout_s=5)
    recorder.end("end", {}, "FAILED")
    assert recorder.close() == [] and store.calls == []


def test_a_store_that_cannot_open_is_one_warning():
    def refuse():
        raise OSError("unable to open database file")

    recorder = Recorder(refuse, timeout_s=5)
    recorder.start("churn", "a-run", {})
    assert recorder.wait_run_id() is None
    problems = recorder.close()
    assert len(problems) == 1
    assert "while opening the store: OSError: unable to open database file" in problems[0]
    assert "the run goes on" in problems[0]


def test_the_first_failure_stops_the_recording():
    store = Store(fail_on="log")
    recorder = Recorder(lambda: store, timeout_s=5)
    recorder.start("churn", "a-run", {})
    recorder.log("recording the evaluation", metrics={"m": 1.0})
    recorder.end("end", {}, "FINISHED")
    problems = recorder.close()
    assert [c[0] for c in store.calls] == ["start_run"]  # nothing after the failure
    assert problems == [
        "MLflow tracking stopped while recording the evaluation: ConnectionError: log: "
        "connection refused; the run goes on, its MLflow record is incomplete"
    ]


def test_a_hanging_store_costs_a_bounded_wait_and_says_so():
    hold = threading.Event()
    recorder = Recorder(lambda: Store(hold=hold), timeout_s=0.2)
    recorder.start("churn", "a-run", {})
    assert recorder.wait_run_id() is None
    problems = recorder.close()
    hold.set()
    assert len(problems) == 2
    assert "not started within 0.2 s (tracking.timeout_s)" in problems[0]
    assert "still busy after 0.2 s" in problems[1]


def test_warnings_are_handed_out_once():
    recorder = Recorder(lambda: Store(fail_on="start_run"), timeout_s=5)
    recorder.start("churn", "a-run", {})
    recorder.wait_run_id()
    assert len(recorder.new_problems()) == 1
    assert recorder.new_problems() == [] and recorder.close() == []


def test_records_go_to_the_handoff_when_the_store_is_not_open_yet():
    hold, handed = threading.Event(), []
    store = Store(hold=hold)
    recorder = Recorder(store.opened, timeout_s=5,
                        handoff=lambda ops, run_id: handed.append((ops, run_id)) or "there")
    recorder.start("churn", "a-run", {"k": "v"})
    recorder.end("end", {"mlops.outcome": "retained"}, "FINISHED")
    assert recorder.close() == []  # at once: no wait for the store
    assert recorder.handed_to == "there"
    hold.set()
    recorder._thread.join(5)
    assert store.calls == []  # the thread stops once the store opens: nothing twice
    assert store.closed
    ops, run_id = handed[0]
    assert run_id is None and [op["method"] for op in ops] == ["start_run", "log", "end_run"]
    replayed = Store()
    run = None
    for op in ops:  # what the replay process does with them
        run = apply(replayed, Op(**op), run)
    assert [c[0] for c in replayed.calls] == ["start_run", "log", "end_run"]
    assert replayed.calls[2] == ("end_run", "run-1", "FINISHED")


def test_an_open_store_is_waited_for_not_handed_off():
    handed = []
    store = Store()
    recorder = Recorder(lambda: store, timeout_s=5, handoff=lambda ops, run_id: handed.append(1))
    recorder.start("churn", "a-run", {})
    assert recorder.wait_run_id() == "run-1"
    recorder.end("end", {}, "FINISHED")
    assert recorder.close() == [] and handed == []
    assert [c[0] for c in store.calls] == ["start_run", "log", "end_run"]


def test_a_handoff_that_fails_is_a_warning():
    hold = threading.Event()

    def refuse(ops, run_id):
        raise OSError("No space left on device")

    recorder = Recorder(Store(hold=hold).opened, timeout_s=5, handoff=refuse)
    recorder.start("churn", "a-run", {})
    problems = recorder.close()
    hold.set()
    assert problems == [
        "MLflow tracking stopped while handing 1 record(s) off: OSError: No space left on "
        "device; the run goes on, its MLflow record is incomplete"
    ]


def _rescued(open_store, **kwargs) -> tuple[Recorder, list]:
    rescued: list = []
    recorder = Recorder(open_store, timeout_s=5, rescue=lambda ops, run_id: rescued.append(
        (ops, run_id)) or "process 7 (log replay.log)", **kwargs)
    return recorder, rescued


def test_a_store_that_is_gone_leaves_the_rest_to_the_rescue():
    store = Store(fail_on="log", error=RecorderGoneError)
    recorder, rescued = _rescued(lambda: store)
    recorder.start("churn", "a-run", {})
    assert recorder.wait_run_id() == "run-1"
    recorder.log("recording the evaluation", metrics={"m": 1.0})
    recorder.end("end", {"mlops.outcome": "promoted"}, "FINISHED")
    problems = recorder.close()
    assert problems == [
        "MLflow recorder process ended while recording the evaluation: RecorderGoneError: log: "
        "connection refused; the run goes on, its remaining records go to another process when "
        "it ends"]
    assert recorder.handed_to == "process 7 (log replay.log)"
    ops, run_id = rescued[0]
    assert run_id == "run-1"  # the records it did not take, the one it died on first
    assert [(op["method"], op["doing"]) for op in ops] == [
        ("log", "recording the evaluation"), ("log", "end"), ("end_run", "end")]


def test_a_store_gone_before_opening_leaves_every_record_to_the_rescue():
    def gone():
        raise RecorderGoneError("recorder process 9 ended with exit code -9")

    recorder, rescued = _rescued(gone)
    recorder.start("churn", "a-run", {})
    assert recorder.wait_run_id() is None
    recorder.end("end", {}, "FINISHED")
    assert "ended while opening the store" in recorder.close()[0]
    assert [op["method"] for op in rescued[0][0]] == ["start_run", "log", "end_run"]


def test_a_store_error_is_not_a_rescue():
    store = Store(fail_on="log", error=RecorderError)
    recorder, rescued = _rescued(lambda: store)
    recorder.start("churn", "a-run", {})
    recorder.log("recording the evaluation", metrics={"m": 1.0})
    problems = recorder.close()
    assert rescued == [] and recorder.handed_to is None
    assert problems == [
        "MLflow tracking stopped while recording the evaluation: log: connection refused; the "
        "run goes on, its MLflow record is incomplete"]


def test_records_the_handoff_refuses_go_to_the_rescue():
    hold = threading.Event()

    def refuse(ops, run_id):
        raise RecorderError("the records exceed the pipe's room")

    recorder, rescued = _rescued(Store(hold=hold).opened, handoff=refuse)
    recorder.start("churn", "a-run", {})
    assert recorder.close() == []
    hold.set()
    assert recorder.handed_to == "process 7 (log replay.log)"
    assert [op["method"] for op in rescued[0][0]] == ["start_run"]


class SlowClosingStore(Store):
    """A store that takes records at once and, like a process still recording, closes only
    when `ended` is set."""

    def __init__(self, ended: threading.Event):
        super().__init__()
        self.ended = ended

    def close(self):
        self.ended.wait(60)
        self.closed = True


def test_a_flow_ending_with_the_store_open_leaves_without_waiting_for_it():
    ended, left = threading.Event(), []
    store = SlowClosingStore(ended)
    recorder = Recorder(lambda: store, timeout_s=30, handoff=lambda ops, run_id: "handed",
                        leave=lambda: left.append(1) or "the process")
    recorder.start("churn", "a-run", {})
    assert recorder.wait_run_id() == "run-1"
    recorder.end("recording the outcome", {"mlops.outcome": "promoted"}, "FINISHED")
    # no "still busy" warning: close waited for the records to be passed on, not for the end
    assert recorder.close() == []
    assert left == [1] and not store.closed
    assert [c[0] for c in store.calls] == ["start_run", "log", "end_run"]
    ended.set()
    recorder._thread.join(5)
    assert store.closed


def test_without_leave_the_flow_waits_for_the_store_to_close():
    ended = threading.Event()
    store = SlowClosingStore(ended)
    recorder = Recorder(lambda: store, timeout_s=0.2, handoff=lambda ops, run_id: "handed")
    recorder.start("churn", "a-run", {})
    recorder.wait_run_id()
    problems = recorder.close()
    assert len(problems) == 1 and "still busy" in problems[0]
    ended.set()
