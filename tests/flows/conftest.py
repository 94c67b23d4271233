"""Fixtures for flow tests: generated data, specs, a real local endpoint, isolated state."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mlops.core.settings import Settings
from tests.conftest import free_port
from tools.datasets import write_churn
from tools.endpoint_process import endpoint_up
from tools.stack import down


@pytest.fixture(scope="session")
def churn_data(tmp_path_factory: pytest.TempPathFactory) -> str:
    out = tmp_path_factory.mktemp("data") / "churn"
    write_churn(str(out), n_rows=2000, partitions=2, seed=11)
    return str(out)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """A fresh state folder (registry, run outputs) and a real endpoint process on it."""
    state = tmp_path_factory.mktemp("state")
    settings = Settings(state_dir=state, endpoint_url=f"http://127.0.0.1:{free_port()}")
    endpoint_up(settings)
    yield settings
    down(settings)


@pytest.fixture
def use_stack(stack: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("MLOPS_STATE_DIR", str(stack.state_dir))
    monkeypatch.setenv("MLOPS_ENDPOINT_URL", stack.endpoint_url)
    return stack
