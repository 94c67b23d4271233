"""Several models on one Prefect server: every spec's deployments generated and deployed with no
prefect.yaml edit, and a file in one model's inbox starts only that model's training.

No worker runs, so a triggered training run stays SCHEDULED: its existence is the trigger's
answer.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
from prefect import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName
from prefect.exceptions import ObjectAlreadyExists
from prefect.settings import PREFECT_API_URL

from flows.watch_data import watch_data
from mlops.core.settings import Settings
from tests.conftest import ROOT, write_spec
from tools.deployments import deploy, write_deployments

pytestmark = [pytest.mark.slow, pytest.mark.service, pytest.mark.usefixtures("prefect_server")]


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """churn, diabetes and a third spec added as a file, deployed from the generated file."""
    configs = tmp_path_factory.mktemp("configs")
    for name in ("churn", "diabetes"):
        shutil.copy(ROOT / "configs" / f"{name}.yaml", configs)
    write_spec(configs, "fraud", {"name": "fraud"})
    with get_client(sync_client=True) as client:
        try:
            client.create_work_pool(WorkPoolCreate(name="local-process", type="process"))
        except ObjectAlreadyExists:
            pass
    state = tmp_path_factory.mktemp("deploy-state")
    prefect_file = write_deployments(Settings(state_dir=state, configs_dir=configs))
    deploy(prefect_file, {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()})
    return configs


def _training_runs(deployment: str) -> list:
    with get_client(sync_client=True) as client:
        return client.read_flow_runs(
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[deployment])))


def _wait_for_runs(deployment: str, timeout_s: float = 60) -> list:
    deadline = time.monotonic() + timeout_s
    while not (runs := _training_runs(deployment)) and time.monotonic() < deadline:
        time.sleep(1)
    return runs


def test_every_spec_has_its_deployments(deployed):
    with get_client(sync_client=True) as client:
        names = {d.name for d in client.read_deployments()}
    for model in ("", "-diabetes", "-fraud"):
        for kind in ("training-nightly", "training-manual", "training-on-new-data",
                     "drift-check", "watch-data", "batch-scoring-nightly"):
            assert f"{kind}{model}" in names


def test_a_file_in_one_models_inbox_trains_only_that_model(deployed, tmp_path, monkeypatch):
    monkeypatch.setenv("MLOPS_STATE_DIR", str(tmp_path / "state"))
    inbox = tmp_path / "incoming" / "fraud"
    inbox.mkdir(parents=True)
    spec_path = str(deployed / "fraud.yaml")
    watch_data(location=str(inbox), spec_path=spec_path, settle_s=0.1)  # first look
    (inbox / "day1.csv").write_text("a\n1\n")
    assert watch_data(location=str(inbox), spec_path=spec_path, settle_s=0.1)["announced"] == 1

    [run] = _wait_for_runs("training-on-new-data-fraud")
    assert run.parameters["spec_path"] == spec_path
    assert run.parameters["data_url"] == f"file://{inbox / 'day1.csv'}"
    # the trigger of every other model saw the same event and started nothing
    time.sleep(3)  # triggers are evaluated together; give a wrong match time to show
    assert _training_runs("training-on-new-data") == []
    assert _training_runs("training-on-new-data-diabetes") == []
