"""The MLflow UI of the local stack: started from its own environment on the store the flows
write, it shows a recorded run and the champion, in a real browser; `down` stops it.

The run is recorded through the same store code as a training run (no flow needed); the UI is
the full mlflow of `.venv-mlflow` (`make mlflow-env`), a separate install from the client's.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from mlops.core.settings import Settings
from mlops.tracking.local import local_target
from mlops.tracking.store import MlflowStore
from tests.conftest import ROOT, free_port
from tests.stack.test_browser import CHROMEDRIVER, CHROMIUM, CHROMIUM_FLAGS
from tools.stack import MLFLOW_BIN, down, mlflow_ui_up, mlflow_url

pytestmark = [pytest.mark.slow, pytest.mark.service]

ARTIFACTS = ROOT / "test-artifacts" / "mlflow-ui"


@pytest.fixture(scope="module")
def ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, str]]:
    """A recorded run (with a picture) and a champion in a fresh state folder, and the UI."""
    if not MLFLOW_BIN.exists():
        pytest.fail(f"{MLFLOW_BIN} not found: `make mlflow-env` installs it (`make test` does)")
    state = tmp_path_factory.mktemp("mlflow-state")
    settings = Settings(state_dir=state, mlflow_port=free_port())
    store = MlflowStore(local_target(state), timeout_s=10, max_retries=0)
    run_id = store.start_run("uichurn", "ui-visible-run", {"mlops.kind": "training"})
    store.log(run_id, params={"model.params.max_iter": "3"},
              metrics={"candidate.roc_auc": 0.8125}, tags={"mlops.outcome": "promoted"})
    note = state / "decision.md"
    note.write_text("### promote\n")
    store.log_files(run_id, [("evaluation", str(note))])
    store.set_champion("uichurn", 1, str(state / "registry" / "uichurn" / "1"), run_id)
    store.end_run(run_id, "FINISHED")
    try:
        mlflow_ui_up(settings)
        yield settings, run_id
    finally:
        down(settings)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
    if missing:
        pytest.fail(f"{', '.join(missing)} not found: `make browser` installs them")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.save_screenshot(str(ARTIFACTS / "last-page.png"))
        driver.quit()


def test_the_server_serves_the_store_the_flows_write(ui):
    settings, run_id = ui
    api = f"{mlflow_url(settings)}/api/2.0/mlflow"
    run = httpx.get(f"{api}/runs/get", params={"run_id": run_id}, timeout=10).json()["run"]
    assert run["info"]["run_name"] == "ui-visible-run"
    assert {"key": "mlops.outcome", "value": "promoted"} in run["data"]["tags"]
    alias = httpx.get(f"{api}/registered-models/alias",
                      params={"name": "uichurn", "alias": "champion"}, timeout=10).json()
    assert alias["model_version"]["run_id"] == run_id
    artifacts = httpx.get(f"{api}/artifacts/list",
                          params={"run_id": run_id, "path": "evaluation"}, timeout=10).json()
    assert [f["path"] for f in artifacts["files"]] == ["evaluation/decision.md"]


def test_a_person_finds_the_run_in_the_ui(ui, browser):
    settings, run_id = ui
    experiment = httpx.get(f"{mlflow_url(settings)}/api/2.0/mlflow/experiments/get-by-name",
                           params={"experiment_name": "uichurn"}, timeout=10).json()
    experiment_id = experiment["experiment"]["experiment_id"]
    browser.get(f"{mlflow_url(settings)}/#/experiments/{experiment_id}")
    # the UI opens in its GenAI view (traces); a person switches to "Model training"
    WebDriverWait(browser, 90, poll_frequency=0.5).until(
        lambda d: d.find_element(By.XPATH, "//*[normalize-space(text())='Model training']")
    ).click()
    WebDriverWait(browser, 90, poll_frequency=0.5).until(
        lambda d: "ui-visible-run" in d.find_element(By.TAG_NAME, "body").text)
    browser.save_screenshot(str(ARTIFACTS / "experiment.png"))
    browser.get(f"{mlflow_url(settings)}/#/experiments/{experiment_id}/runs/{run_id}")
    WebDriverWait(browser, 90, poll_frequency=0.5).until(
        lambda d: "0.8125" in d.find_element(By.TAG_NAME, "body").text)
    browser.save_screenshot(str(ARTIFACTS / "run.png"))


def test_down_stops_the_ui(ui):
    settings, _ = ui
    down(settings)
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{mlflow_url(settings)}/health", timeout=2)
