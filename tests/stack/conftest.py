"""The local stack for end-to-end tests: a real Prefect server, worker and endpoint.

Started once per session by the same code as `make up` (tools.stack), on free loopback ports, a
temporary state folder and a temporary configs folder of three specs: a churn model (named
`churn`, so its deployments keep the plain names the tests start), a copy of the shipped
diabetes spec and a third model on churn data under another name. `up` deploys all three with
no prefect.yaml edit and trains all three, served from one endpoint server. Stopped by PID at
the end.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from mlops.core.settings import Settings
from tests.conftest import ROOT, free_port, write_spec
from tools.datasets import write_churn, write_diabetes
from tools.stack import down, up

# The first model is deliberately weak, so a better one can be shipped over it.
WEAK = {"model.params": {"max_iter": 3, "max_depth": 1, "learning_rate": 0.05}}
STRONG = {"model.params": {"max_iter": 120, "learning_rate": 0.08}}
# The other two models' watchers and batch scoring are off: six flow runs a minute on two
# cores would slow every test; test_model_inboxes.py covers their inboxes.
QUIET = {"on_new_data": False, "batch": "off"}
THIRD = "retention"


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

    def spec(self, model: str) -> str:
        """The spec file of one of the stack's models."""
        return str(self.settings.configs_dir / f"{model}.yaml")


def _configs(folder: Path, churn_data: str, diabetes_data: str) -> str:
    """The three specs; returns the churn model's."""
    diabetes = yaml.safe_load((ROOT / "configs" / "diabetes.yaml").read_text())
    diabetes["data"]["url"] = diabetes_data
    diabetes["schedule"] = QUIET
    (folder / "diabetes.yaml").write_text(yaml.safe_dump(diabetes))
    write_spec(folder, THIRD, {
        "name": THIRD, "data.url": churn_data, "evaluation.minimum": 0.5, "schedule": QUIET,
        "model.params": {"max_iter": 10}, "evaluation.bootstrap.samples": 50,
    })
    return write_spec(folder, "churn", {
        "name": "churn", "data.url": churn_data, "evaluation.minimum": 0.5, **WEAK,
    })


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    state = tmp_path_factory.mktemp("stack-state")
    data = tmp_path_factory.mktemp("stack-data")
    write_churn(str(data / "churn"), n_rows=2000, partitions=2, seed=5)
    configs = tmp_path_factory.mktemp("stack-configs")
    spec = _configs(configs, str(data / "churn"),
                    write_diabetes(str(data / "diabetes.parquet")))
    settings = Settings(
        state_dir=state, configs_dir=configs, endpoint_url=f"http://127.0.0.1:{free_port()}",
        prefect_port=free_port(), mlflow_port=free_port(),
    )
    try:
        up(settings, spec_path=spec, timeout_s=600)
        yield Stack(settings, spec, str(data / "churn"))
    finally:
        down(settings)
