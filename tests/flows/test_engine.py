"""flows/_engine.py: the heartbeat stops when the run ends, not on the next whole second."""

from __future__ import annotations

import threading
import types
from contextlib import contextmanager

import prefect.flow_engine as prefect_engine
import pytest
from prefect import flow, task

from flows import _engine


@task
def _one() -> int:
    return 1


@flow
def _tiny() -> int:
    return _one()


def test_installed_over_the_locked_prefect():
    """Fails when Prefect changes its heartbeat code: re-read flows/_engine.py then."""
    import flows.training  # noqa: F401, PLC0415 - importing a flow installs it

    assert prefect_engine._send_heartbeats is _engine._send_heartbeats
    assert _engine.install()


def test_other_prefect_code_is_left_alone_with_a_warning(monkeypatch, caplog):
    @contextmanager
    def someone_elses(engine, join_on_exit=True):
        yield

    monkeypatch.setattr(prefect_engine, "_send_heartbeats", someone_elses)
    with caplog.at_level("WARNING", logger="flows._engine"):
        assert not _engine.install()
    assert prefect_engine._send_heartbeats is someone_elses
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert "not installed" in caplog.text and "flows/_engine.py" in caplog.text


@pytest.mark.service
def test_heartbeats_are_sent_and_the_thread_never_sleeps_in_steps(prefect_server, monkeypatch):
    """A flow run sends its first heartbeat, and its end stops the thread through the event:
    Prefect's own loop would call `time.sleep(1)` here (replaced by a recorder)."""
    _engine.install()
    sent: list[str] = []
    monkeypatch.setattr(prefect_engine.FlowRunEngine, "_emit_flow_run_heartbeat",
                        lambda self, resource, related: sent.append(str(self.flow_run.id)))
    sleeps: list[float] = []
    monkeypatch.setattr(prefect_engine, "time",
                        types.SimpleNamespace(sleep=sleeps.append,
                                              **{k: getattr(prefect_engine.time, k)
                                                 for k in ("time", "monotonic", "perf_counter")}))

    assert _tiny() == 1

    assert len(sent) == 1
    assert sleeps == []
    assert not [t for t in threading.enumerate() if t.name == _engine.THREAD_NAME]


def test_prefects_own_loop_is_what_the_recorder_catches(prefect_server, monkeypatch):
    """The check above can fail: with Prefect's heartbeat in place the recorder sees its sleep."""
    original = _original_send_heartbeats()
    monkeypatch.setattr(prefect_engine, "_send_heartbeats", original)
    monkeypatch.setattr(prefect_engine.FlowRunEngine, "_emit_flow_run_heartbeat",
                        lambda self, resource, related: None)
    slept = threading.Event()

    def sleep(seconds: float) -> None:
        slept.set()

    monkeypatch.setattr(prefect_engine, "time",
                        types.SimpleNamespace(sleep=sleep, time=prefect_engine.time.time,
                                              monotonic=prefect_engine.time.monotonic,
                                              perf_counter=prefect_engine.time.perf_counter))
    assert _tiny() == 1
    assert slept.wait(5)


def _original_send_heartbeats():
    """Prefect's function as shipped, compiled again from its module's source into a
    function whose globals are that module's (so it reads the patched `time`)."""
    import importlib.util  # noqa: PLC0415

    spec = importlib.util.find_spec("prefect.flow_engine")
    source = spec.loader.get_source("prefect.flow_engine")
    start = source.index("@contextmanager\ndef _send_heartbeats(")
    end = source.index("\n@deprecated_callable", start)
    defined: dict = {}
    exec(compile(source[start:end], spec.origin, "exec"), vars(prefect_engine), defined)  # noqa: S102
    fn = defined["_send_heartbeats"]
    assert not getattr(fn, "replaces_prefect", False)
    return fn
