"""The recorder: records in order on its own thread; a store that fails or hangs becomes a
warning and a bounded wait, never an error in the caller."""

from __future__ import annotations

import threading

from mlops.tracking.recorder import Recorder


class Store:
    """A store that keeps what it is sent; `hold` blocks every call until it is set."""

    def __init__(self, fail_on: str | None = None, hold: threading.Event | None = None):
        self.calls: list[tuple] = []
        self.fail_on = fail_on
        self.hold = hold

    def _call(self, name: str, *args) -> None:
        if self.hold is not None:
            self.hold.wait()
        if name == self.fail_on:
            raise ConnectionError(f"{name}: connection refused")
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


def test_records_go_in_order_and_name_the_run():
    store = Store()
    recorder = Recorder(lambda: store, timeout_s=5)
    recorder.start("churn", "a-run", {})
    recorder.on_run("params", lambda s, rid: s.log(rid, params={"a": "1"}))
    assert recorder.wait_run_id() == "run-1"
    recorder.link_version({"mlops.model_version": "3"})
    recorder.mirror_champion("churn", 3, "/registry/churn/3")
    recorder.on_run("end", lambda s, rid: s.end_run(rid, "FINISHED"))
    assert recorder.close() == []
    assert [c[0] for c in store.calls] == ["start_run", "log", "log", "set_champion", "end_run"]
    assert store.calls[2][4] == {"mlops.model_version": "3"}
    assert store.calls[3] == ("set_champion", "churn", 3, "run-1")


def test_records_without_a_run_are_dropped_quietly():
    store = Store()
    recorder = Recorder(lambda: store, timeout_s=5)
    recorder.on_run("end", lambda s, rid: s.end_run(rid, "FAILED"))
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
    recorder.on_run("recording the evaluation", lambda s, rid: s.log(rid, metrics={"m": 1.0}))
    recorder.on_run("end", lambda s, rid: s.end_run(rid, "FINISHED"))
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
