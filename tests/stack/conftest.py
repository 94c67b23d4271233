"""The local stack for end-to-end tests: a real Prefect server, worker and endpoint.

Started once per session by the same code as `make up` (tools.stack), on free loopback ports
and a temporary state folder, with every deployment of prefect.yaml deployed and a first
training run completed. Stopped by PID at the end.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from mlops.core.settings import Settings
from tests.conftest import free_port, write_spec
from tools.datasets import write_churn
from tools.stack import down, up

# The first model is deliberately weak, so a better one can be shipped over it.
WEAK = {"model.params": {"max_iter": 3, "max_depth": 1, "learning_rate": 0.05}}
STRONG = {"model.params": {"max_iter": 120, "learning_rate": 0.08}}


@dataclass(frozen=True)
class Stack:
    settings: Settings
    spec_path: str
    data_url: str

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.prefect_port}"

    @property
    def api_url(self) -> str:
        return f"{self.ui_url}/api"


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    state = tmp_path_factory.mktemp("stack-state")
    data = tmp_path_factory.mktemp("stack-data") / "churn"
    write_churn(str(data), n_rows=2000, partitions=2, seed=5)
    spec = write_spec(
        state, "stackchurn",
        {"name": "stackchurn", "data.url": str(data), "evaluation.minimum": 0.5, **WEAK},
    )
    settings = Settings(
        state_dir=state, endpoint_url=f"http://127.0.0.1:{free_port()}", prefect_port=free_port(),
        mlflow_port=free_port(),
    )
    try:
        up(settings, spec_path=spec, timeout_s=600)
        yield Stack(settings, spec, str(data))
    finally:
        down(settings)
