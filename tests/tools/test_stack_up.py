"""The order of `mlops up`: the MLflow UI starts beside the Prefect server and is up before a
run can write to its store; a UI that does not come up stops `up`."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from mlops.core.settings import Settings
from tools import stack

STEPS = ("endpoint_up", "model_endpoints_up", "prefect_server_up", "worker_up", "deploy_all",
         "first_look", "first_runs")


def _record_steps(monkeypatch, done: list[str], server_starting: threading.Event,
                  mlflow_ui_up: Callable[[Settings], None]) -> None:
    """Every step of `up` replaced by one that records its name; the Prefect server's step
    sets `server_starting`."""

    def step(name: str) -> Callable[..., object]:
        def run(*args: object, **kwargs: object) -> object:
            done.append(name)
            if name == "prefect_server_up":
                server_starting.set()
            return {} if name == "model_endpoints_up" else None  # its served URLs
        return run

    for name in STEPS:
        monkeypatch.setattr(stack, name, step(name))
    monkeypatch.setattr(stack.environments, "up", step("environments"))
    monkeypatch.setattr(stack, "mlflow_ui_up", mlflow_ui_up)


def test_the_mlflow_ui_starts_beside_the_prefect_server_and_before_any_run(monkeypatch,
                                                                         tmp_path):
    done: list[str] = []
    server_starting = threading.Event()

    def mlflow_ui_up(settings: Settings) -> None:
        # one after the other, the UI's start would wait here for a server not yet started
        assert server_starting.wait(10), "the MLflow UI started only after the Prefect server"
        done.append("mlflow_ui_up")

    _record_steps(monkeypatch, done, server_starting, mlflow_ui_up)
    stack.up(Settings(state_dir=tmp_path))
    assert sorted(done) == sorted([*STEPS, "environments", "mlflow_ui_up"])
    assert done.index("mlflow_ui_up") < done.index("first_look") < done.index("first_runs")


def test_an_mlflow_ui_that_does_not_come_up_stops_up(monkeypatch, tmp_path):
    def mlflow_ui_up(settings: Settings) -> None:
        raise SystemExit("mlflow server did not come up")

    done: list[str] = []
    _record_steps(monkeypatch, done, threading.Event(), mlflow_ui_up)
    with pytest.raises(SystemExit, match="mlflow server did not come up"):
        stack.up(Settings(state_dir=tmp_path))
    assert "first_look" not in done and "first_runs" not in done
