"""Fixtures for the task tests: real task runs on the session's Prefect server, isolated state.

The tasks are called directly, outside a flow: each call is a real task run with its retries,
cache and result persistence. The shared stages run once per session, in a state folder of
their own (the data stages write their tables there); each test gets a fresh state folder for
the registry, run outputs and any tables it makes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from prefect.settings import PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW, temporary_settings
from threadpoolctl import threadpool_limits

from tests.tasks._release_env import Release, running_release
from tests.tasks._stages import Stages, run_stages, write_spec
from tools.datasets import make_churn, write_churn

# The shipped churn model with fewer boosting rounds: the same code paths, a faster fit.
SHARED_MODEL = {"model.params": {"max_iter": 60, "learning_rate": 0.1, "random_state": 42}}


@pytest.fixture(scope="session", autouse=True)
def standalone_task_runs(prefect_server: None) -> Iterator[None]:
    """Task runs outside a flow cannot send their logs to the API; that is expected here.

    Prefect warns about it on every log line, and the suite turns warnings into errors.
    """
    with temporary_settings({PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW: "ignore"}):
        yield


@pytest.fixture(scope="session", autouse=True)
def one_openmp_thread() -> Iterator[None]:
    """Fit on one thread: on a busy 2-core machine OpenMP's spinning threads slow fits tenfold."""
    with threadpool_limits(limits=1, user_api="openmp"):
        yield


@pytest.fixture(scope="session", autouse=True)
def session_state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The state folder of session and module fixtures: never the project's own `.mlops`."""
    state = tmp_path_factory.mktemp("session-state")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLOPS_STATE_DIR", str(state))
        yield state


@pytest.fixture(autouse=True)
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Registry (`<state>/registry`), run outputs and stage tables in a fresh folder."""
    state = tmp_path / "state"
    monkeypatch.setenv("MLOPS_STATE_DIR", str(state))
    return state


@pytest.fixture(scope="session")
def churn_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """1500 valid churn rows in two Parquet partitions (never modified by a test)."""
    out = tmp_path_factory.mktemp("data") / "churn"
    write_churn(str(out), n_rows=1500, partitions=2, seed=7)
    return str(out)


@pytest.fixture(scope="session")
def churn_rows() -> pd.DataFrame:
    """The same rows as a frame, for tests that break them before writing them."""
    return make_churn(1500, seed=7)


@pytest.fixture(scope="session")
def stages(
    standalone_task_runs: None, one_openmp_thread: None, session_state: Path, churn_dir: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Stages:
    """The churn spec on `churn_dir`, from read_spec to train_model (tables in session_state)."""
    spec_path = write_spec(tmp_path_factory.mktemp("specs"), "churn", SHARED_MODEL)
    return run_stages(spec_path, churn_dir, until="train_model")


@pytest.fixture
def release(tmp_path: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Release]:
    """A fresh endpoint with blue serving v1 of the toy model at 100%, v1 the champion
    (`tests.tasks._release_env`)."""
    with running_release(tmp_path, state_dir, monkeypatch) as running:
        yield running
