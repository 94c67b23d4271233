"""Issue 6's "done when": the whole training flow on Blob Storage (Azurite).

A spec switched to abfs:// data and an abfs:// registry, the real local endpoint (which loads the
bundle from the container and writes its inference data there), a real Prefect test server.
Credentials reach every process only through AZURE_STORAGE_CONNECTION_STRING, and the account
key shows up nowhere: not in flow parameters, logs, artifacts, results, manifests or state.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect import get_client
from prefect.settings import get_current_settings

from flows.training import training
from mlops.core.errors import DataLoadError
from mlops.core.settings import Settings
from mlops.data.loading import read_table
from mlops.data.storage import list_data_files, url_to_fs
from mlops.endpoint.local import LocalEndpointClient
from mlops.endpoint.payloads import frame_to_request
from mlops.registry.local import LocalRegistry
from tests.azure.azurite import ACCOUNT_KEY
from tests.azure.conftest import AZURE_ENV, new_container
from tests.conftest import free_port, write_spec
from tools.datasets import make_churn, write_churn
from tools.endpoint_process import endpoint_up
from tools.stack import down

pytestmark = [
    pytest.mark.azurite, pytest.mark.service, pytest.mark.slow,
    pytest.mark.usefixtures("prefect_server"),
]

FAST = {"model.params": {"max_iter": 40, "learning_rate": 0.1, "random_state": 42},
        "evaluation.minimum": 0.6}


@pytest.fixture(scope="module")
def blob_stack(azurite, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, str]]:
    """A container with the churn data, and an endpoint that logs its inference data there.

    The endpoint process gets the connection string from its environment, as it would from a
    deployment's settings; nothing is passed on its command line.
    """
    container = new_container(azurite.connection_string, prefix="flow")
    state = tmp_path_factory.mktemp("blob-state")
    settings = Settings(state_dir=state, endpoint_url=f"http://127.0.0.1:{free_port()}")
    with pytest.MonkeyPatch.context() as env:
        for name in AZURE_ENV:
            env.delenv(name, raising=False)
        env.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
        write_churn(f"abfs://{container}/data/churn", n_rows=2000, partitions=2, seed=11)
        env.setenv("MLOPS_ENDPOINT_COLLECT_URL", f"abfs://{container}/inference")
        env.setenv("MLOPS_ENDPOINT_COLLECT_FLUSH_S", "0.5")
        # the spec's registry is in the container, outside the default model roots
        env.setenv("MLOPS_ENDPOINT_MODEL_ROOTS", json.dumps([f"abfs://{container}/registry"]))
        endpoint_up(settings)
        try:
            yield settings, container
        finally:
            down(settings)


def _inference_rows(url: str, timeout_s: float = 60.0) -> int:
    """Rows the endpoint has written under `url` so far, waiting for its first flush."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return len(read_table(list_data_files(url)))
        except DataLoadError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_training_flow_on_blob_data_and_a_blob_registry(blob_stack, blob_env, tmp_path,
                                                        monkeypatch):
    settings, container = blob_stack
    monkeypatch.setenv("MLOPS_STATE_DIR", str(settings.state_dir))
    monkeypatch.setenv("MLOPS_ENDPOINT_URL", settings.endpoint_url)
    data_url = f"abfs://{container}/data/churn"
    registry_url = f"abfs://{container}/registry"
    spec = write_spec(tmp_path, "churn-blob", {
        **FAST, "data.url": data_url, "registry.url": registry_url,
    })

    first = training(spec_path=spec, return_state=True)
    assert first.result() == {"outcome": "promoted", "version": 1, "traffic": {"blue": 100}}

    registry = LocalRegistry(registry_url)
    assert registry.versions("churn") == [1] and registry.alias("churn") == 1
    manifest = registry.get("churn", 1).manifest
    assert manifest["data_url"] == data_url
    assert manifest["source_rows"] == 2000
    endpoint = LocalEndpointClient.from_settings(settings)
    state = endpoint.state()
    assert state["deployments"]["blue"]["model_url"] == f"{registry_url}/churn/1"

    rows = make_churn(7, seed=99).drop(columns=["churned"])
    answer = endpoint.score(frame_to_request(rows))
    assert str(answer["model_version"]) == "1" and len(answer["predictions"]) == 7
    # The smoke test's rows and these seven, read back from the container.
    logged = _inference_rows(f"abfs://{container}/inference/local-endpoint")
    assert logged >= 7

    again = training(spec_path=spec, return_state=True)
    assert again.result() == {"outcome": "retained", "champion": 1}  # same etags: same data
    assert registry.versions("churn") == [1]

    _assert_no_secret_anywhere(first, settings.state_dir, container, blob_env)


def _assert_no_secret_anywhere(flow_state, state_dir: Path, container: str, blob_env: str):
    flow_run_id = str(flow_state.state_details.flow_run_id)
    by_run = {"flow_run_id": {"any_": [flow_run_id]}}
    with get_client(sync_client=True) as client:
        run = client.request("GET", f"/flow_runs/{flow_run_id}").text
        logs = client.request("POST", "/logs/filter", json={"logs": by_run, "limit": 200}).text
        artifacts = client.request("POST", "/artifacts/filter", json={"artifacts": by_run}).text
    assert "spec_path" in run and "Registered churn version 1" in logs and "churn" in artifacts
    seen = {"flow run": run, "logs": logs, "artifacts": artifacts}
    fs, root = url_to_fs(f"abfs://{container}")
    for name in fs.find(root):  # data, registry, inference logs
        seen[name] = fs.cat_file(name).decode("latin-1")
    for folder in (state_dir, Path(get_current_settings().home), _database_folder()):
        for path in folder.rglob("*"):
            if path.is_file():
                seen[str(path)] = path.read_bytes().decode("latin-1")
    assert len(seen) > 10
    leaks = [where for where, text in seen.items() if ACCOUNT_KEY in text or blob_env in text]
    assert leaks == []


def _database_folder() -> Path:
    """The test server's SQLite folder (sqlite+aiosqlite:////tmp/.../prefect-test.db)."""
    url = get_current_settings().server.database.connection_url.get_secret_value()
    return Path(url.split(":///", 1)[1]).parent
