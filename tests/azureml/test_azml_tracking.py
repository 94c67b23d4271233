"""Tracking to the Azure ML workspace without its MLflow plugin, checked without a workspace:
the URI comes from the SDK's workspace entity, the token from the credential, and MLflow's REST
client sends both, as a local stand-in for the workspace's tracking server sees them."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest

from mlops.core.errors import SpecError, TrackingError
from mlops.core.settings import Settings
from mlops.tracking.azureml import ARM_SCOPE, azureml_target, https_uri
from mlops.tracking.backend import tracking_target
from mlops.tracking.protocol import TrackingTarget
from mlops.tracking.store import MlflowStore
from tests.azureml.conftest import azure_spec
from tests.azureml.standin.http import LOCATION, WORKSPACE_PATH

MLFLOW_URI = f"azureml://{LOCATION}.api.azureml.ms/mlflow/v1.0{WORKSPACE_PATH}"

RUN = {"info": {"run_id": "r1", "run_uuid": "r1", "experiment_id": "7", "status": "RUNNING",
                "start_time": 1, "lifecycle_stage": "active", "artifact_uri": ""},
       "data": {}}
ANSWERS = {
    "experiments/get-by-name": {"experiment": {"experiment_id": "7", "name": "churn",
                                               "lifecycle_stage": "active"}},
    "runs/create": {"run": RUN},
    "runs/log-batch": {},
    "runs/get": {"run": RUN},
    "runs/update": {"run_info": RUN["info"]},
}


class Credential:
    """DefaultAzureCredential's interface: a token for a scope."""

    def __init__(self) -> None:
        self.scopes: list[str] = []

    def get_token(self, *scopes: str) -> SimpleNamespace:
        self.scopes.extend(scopes)
        return SimpleNamespace(token=f"token-{len(self.scopes)}", expires_on=0)


@pytest.fixture
def workspace_server() -> Iterator[tuple[str, list[dict]]]:
    """The workspace's MLflow REST API at its own path, answering as MLflow's server does."""
    seen: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            seen.append({"method": self.command, "path": urlsplit(self.path).path,
                         "auth": self.headers.get("Authorization"), "body": body})
            route = urlsplit(self.path).path.split("/api/2.0/mlflow/")[-1]
            answer = ANSWERS.get(route)
            self.send_response(200 if answer is not None else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(json.dumps(answer if answer is not None else {}).encode())

        do_GET = do_POST = _answer

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", seen
    server.shutdown()
    server.server_close()


@pytest.mark.azurite
def test_the_uri_comes_from_the_workspace_and_the_token_from_the_credential(ml_client):
    """The SDK reads the workspace (answered by the HTTP stand-in) for its tracking URI."""
    cred = Credential()
    target = azureml_target(azure_spec().azureml, client=ml_client, cred=cred)
    assert target.uri == f"https://{LOCATION}.api.azureml.ms/mlflow/v1.0{WORKSPACE_PATH}"
    assert target.token() == "token-1" and cred.scopes == [ARM_SCOPE]
    assert not target.artifacts and not target.mirror_champion


@pytest.mark.parametrize("uri", ["http://host/mlflow", "file:///tmp/mlruns", "azureml://", "x"])
def test_other_uris_are_refused_with_the_expected_form(uri):
    with pytest.raises(TrackingError, match="not an Azure ML tracking URI.*azureml://<region>"):
        https_uri(uri)


def test_a_spec_on_azure_tracks_to_its_workspace(tmp_path, monkeypatch):
    settings = Settings(state_dir=tmp_path)
    assert tracking_target(azure_spec(**{"tracking.uri": MLFLOW_URI}), settings).uri == (
        https_uri(MLFLOW_URI))
    local = tracking_target(azure_spec(**{"registry.backend": "local",
                                          "endpoint.backend": "local"}), settings)
    assert local.uri == f"sqlite:///{(tmp_path / 'mlflow' / 'mlflow.db').resolve()}"
    other = tracking_target(azure_spec(**{"tracking.uri": "http://mlflow:5000"}), settings)
    assert other == TrackingTarget(uri="http://mlflow:5000")


def test_an_azureml_uri_needs_the_workspace_section():
    from mlops.core.spec import load_spec
    from tests.azureml.conftest import CHURN_YAML

    with pytest.raises(SpecError, match="tracking.uri 'azureml://...' needs an 'azureml'"):
        load_spec(CHURN_YAML, {"tracking.uri": MLFLOW_URI})


def test_mlflow_sends_the_bearer_token_to_the_workspace_path(workspace_server, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "120")  # restored after the store sets it
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "7")
    base, seen = workspace_server
    path = f"/mlflow/v1.0{WORKSPACE_PATH}"
    cred = Credential()
    store = MlflowStore(TrackingTarget(uri=base + path, token=lambda: cred.get_token(
        ARM_SCOPE).token, artifacts=False, mirror_champion=False), timeout_s=2, max_retries=0)

    run_id = store.start_run("churn", "a-run", {"mlops.kind": "training"})
    store.log(run_id, metrics={"candidate.roc_auc": 0.8}, params={"split.seed": "42"})
    store.log_files(run_id, [("evaluation", "/nonexistent.png")])  # no artifacts to Azure ML
    store.set_champion("churn", 1, "azureml://models/churn/versions/1", run_id)  # theirs
    store.end_run(run_id, "FINISHED")

    assert run_id == "r1"
    assert [r["path"].removeprefix(path) for r in seen] == [
        "/api/2.0/mlflow/experiments/get-by-name", "/api/2.0/mlflow/runs/create",
        "/api/2.0/mlflow/runs/log-batch", "/api/2.0/mlflow/runs/get",
        "/api/2.0/mlflow/runs/update"]
    # a token from the credential before each step (which caches and renews it)
    assert [r["auth"] for r in seen] == ["Bearer token-2", "Bearer token-2", "Bearer token-3",
                                         "Bearer token-4", "Bearer token-4"]
    batch = seen[2]["body"]
    assert batch["metrics"][0]["key"] == "candidate.roc_auc"
    assert batch["params"] == [{"key": "split.seed", "value": "42"}]
