"""The local stack end to end: deployments on a real server, run by a real worker.

A manual run through the API ships a better model to the endpoint; a file dropped into a watched
folder reaches a training run through watcher -> event -> trigger; two triggers at once run one
after the other.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from prefect import get_client
from prefect.client.schemas.filters import (
    DeploymentFilter,
    DeploymentFilterName,
    FlowRunFilter,
    FlowRunFilterId,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.deployments import run_deployment

from mlops.core.errors import EndpointError
from mlops.core.spec import PipelineSpec, load_spec
from mlops.endpoint.backend import endpoint_for, local_endpoint_url
from mlops.endpoint.local import KEYS_FILE, LocalEndpointClient, endpoint_name_in
from mlops.endpoint.payloads import frame_to_request
from mlops.registry.local import LocalRegistry
from serving.config import named_endpoint_dir
from tasks.watch import EVENT_NAME
from tests.conftest import spec_endpoint, write_spec
from tests.stack.conftest import STRONG, THIRD, Stack
from tools.datasets import write_churn
from tools.predict import first_rows
from tools.stack import _descendants, down, mlflow_url, stack_api

pytestmark = [pytest.mark.slow, pytest.mark.service]

TIMEOUT_S = 600


def _serving(stack: Stack) -> tuple[str, str]:
    """(model version, deployment) that the live slot serves."""
    state = spec_endpoint(stack.spec_path, stack.settings).state()
    live = max(state["traffic"], key=lambda name: state["traffic"][name])
    return str(state["deployments"][live]["model_version"]), live


def _training_runs(deployment: str) -> list:
    with get_client(sync_client=True) as client:
        return client.read_flow_runs(
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[deployment])),
            limit=50, offset=0,
        )


def _wait_for(predicate, what: str):
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(2)
    raise AssertionError(f"gave up waiting for {what}")


def test_manual_run_through_the_api_ships_the_better_model(local_stack: Stack, tmp_path):
    before, _ = _serving(local_stack)
    strong = write_spec(tmp_path, "strong", {
        "name": "churn", "data.url": local_stack.data_url, "evaluation.minimum": 0.5,
        **STRONG,
    })
    with stack_api(local_stack.settings):
        run = run_deployment(
            "training/training-manual",
            parameters={"spec_path": strong, "reason": "test: better params"},
            timeout=TIMEOUT_S,
        )
    assert run.state.is_completed(), run.state
    version, _ = _serving(local_stack)
    assert int(version) == int(before) + 1
    registry = LocalRegistry(local_stack.settings.registry_location)
    assert registry.alias("churn") == int(version)


def _own_rows(spec: PipelineSpec) -> pd.DataFrame:
    """The first rows of the model's own data, its feature columns."""
    return first_rows(spec, 25)


def _scored_by_champion(stack: Stack, spec: PipelineSpec) -> tuple[int, dict]:
    """(champion version, the endpoint's answer) read while the champion stayed put (another
    test's run may be promoting meanwhile)."""
    registry = LocalRegistry(stack.settings.registry_location)
    request = frame_to_request(_own_rows(spec))
    for _ in range(5):
        before = registry.alias(spec.model_name)
        assert before is not None, f"up did not train {spec.name}: it has no champion"
        with endpoint_for(spec, stack.settings) as client:
            answer = client.score(request)
        if registry.alias(spec.model_name) == before:
            return before, answer
        time.sleep(5)
    raise AssertionError(f"{spec.name}'s champion kept moving")


def test_one_endpoint_server_serves_every_models_champion(local_stack: Stack):
    """`up` trained all three models of the configs folder, and the one endpoint server answers
    each model's rows at that model's endpoint with its registered champion's predictions."""
    settings = local_stack.settings
    registry = LocalRegistry(settings.registry_location)
    keys = {}
    for model in ("churn", "diabetes", THIRD):
        spec = load_spec(local_stack.spec(model))
        url = local_endpoint_url(spec, settings)
        assert url.startswith(settings.endpoint_url)  # the one server
        version, answer = _scored_by_champion(local_stack, spec)
        champion = registry.load(spec.model_name, version).model
        # the request's JSON carries ten significant digits (pandas' to_json), hence rtol
        np.testing.assert_allclose(answer["predictions"], champion.predict(_own_rows(spec)),
                                   rtol=1e-9, err_msg=model)
        assert int(answer["model_version"]) == version, model
        with endpoint_for(spec, settings) as client:
            state = client.state()
        served = {(d["model_name"], int(d["model_version"]))
                  for name, d in state["deployments"].items() if state["traffic"].get(name)}
        assert served == {(spec.model_name, version)}, (model, state)
        name = endpoint_name_in(url)
        folder = (named_endpoint_dir(settings.state_dir, name) if name
                  else settings.endpoint_state_dir)
        keys[model] = json.loads((folder / KEYS_FILE).read_text())["key"]
    assert len(set(keys.values())) == 3, "each endpoint has its own scoring key"
    diabetes = load_spec(local_stack.spec("diabetes"))
    with LocalEndpointClient(local_endpoint_url(diabetes, settings), keys["churn"]) as wrong, \
            pytest.raises(EndpointError, match="401"):
        wrong.score(frame_to_request(_own_rows(diabetes)))


def test_new_file_in_watched_folder_starts_training_on_it(local_stack: Stack, tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    params = {"location": str(inbox), "spec_path": local_stack.spec_path, "settle_s": 1}
    with stack_api(local_stack.settings):
        assert run_deployment("watch-data/watch-data", parameters=params,
                              timeout=TIMEOUT_S).state.is_completed()
        write_churn(str(inbox / "snapshot"), n_rows=1500, partitions=1, seed=21)
        dropped = next((inbox / "snapshot").glob("*.parquet"))
        assert run_deployment("watch-data/watch-data", parameters=params,
                              timeout=TIMEOUT_S).state.is_completed()
        url = f"file://{dropped}"
        runs = _wait_for(
            lambda: [
                r for r in _training_runs("training-on-new-data")
                if r.parameters.get("data_url") == url and r.state and r.state.is_final()
            ],
            f"a training run on {url}",
        )
    assert len(runs) == 1, "one file, one run"
    assert runs[0].state.is_completed(), runs[0].state
    assert runs[0].parameters["spec_path"] == local_stack.spec_path


def _held(flow_run_id) -> tuple[datetime, datetime, list]:
    """When the run took its model's training slot, and its last task's end (the slot spans
    every task of the run)."""
    with get_client(sync_client=True) as client:
        logs = client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])),
            limit=200, offset=0,
        )
        tasks = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])), limit=200
        )
    taken = min(log.timestamp for log in logs if "Holding the training slot" in log.message)
    ends = [(t.end_time, t.name) for t in tasks if t.end_time]
    return taken, max(ends)[0], sorted((t.start_time, t.end_time, t.name) for t in tasks)


def test_two_triggers_at_once_run_one_after_the_other(local_stack: Stack, tmp_path):
    files = []
    for seed in (31, 32):
        write_churn(str(tmp_path / f"batch{seed}"), n_rows=1500, partitions=1, seed=seed)
        files.append(f"file://{next((tmp_path / f'batch{seed}').glob('*.parquet'))}")
    events = [
        {
            "id": str(uuid.uuid4()), "occurred": datetime.now().astimezone().isoformat(),
            "event": EVENT_NAME,
            # churn's on-new-data trigger matches the events that name its model
            "resource": {"prefect.resource.id": url, "mlops.location": str(tmp_path),
                         "mlops.model": "churn"},
            "payload": {"url": url, "spec_path": local_stack.spec_path, "change": "new"},
        }
        for url in files
    ]
    with stack_api(local_stack.settings):
        with get_client(sync_client=True) as client:
            client.request("POST", "/events", json=events).raise_for_status()
        runs = _wait_for(
            lambda: (
                found if len(found := [
                    r for r in _training_runs("training-on-new-data")
                    if r.parameters.get("data_url") in files and r.state and r.state.is_final()
                ]) == 2 else None
            ),
            "both triggered runs to finish",
        )
        assert all(r.state.is_completed() for r in runs), [r.state for r in runs]
        first, second = sorted(_held(r.id) for r in runs)
    assert first[1] <= second[0], f"the two runs of one model overlapped: {first} {second}"
    assert Path(files[0].removeprefix("file://")).exists()


def test_the_first_run_is_in_the_stacks_mlflow_ui(local_stack: Stack):
    """The run `up` started, in a worker's process, is an MLflow run the stack's UI serves."""
    api = f"{mlflow_url(local_stack.settings)}/api/2.0/mlflow"

    def finished_runs() -> list:
        found = httpx.get(f"{api}/experiments/get-by-name", timeout=10,
                          params={"experiment_name": "churn"})
        if found.status_code != 200:
            return []
        runs = httpx.post(f"{api}/runs/search", timeout=10, json={
            "experiment_ids": [found.json()["experiment"]["experiment_id"]],
            "filter": "tags.`mlops.outcome` = 'promoted'"}).json().get("runs", [])
        return [r for r in runs if r["info"]["status"] == "FINISHED"]

    _wait_for(finished_runs, "the first run's promoted MLflow run")
    alias = httpx.get(f"{api}/registered-models/alias", timeout=10,
                      params={"name": "churn", "alias": "champion"})
    assert alias.status_code == 200, alias.text


def test_zz_down_stops_everything_it_started(local_stack: Stack):
    """Last in this file: `make down` stops the server, worker, endpoint and a running flow."""
    settings = local_stack.settings
    with stack_api(settings):
        run = run_deployment(
            "training/training-manual",
            parameters={"spec_path": local_stack.spec_path, "force": True}, timeout=0,
        )
        _wait_for(
            lambda: _read_run(run.id).state.is_running(), "the training run to be running"
        )
    pids = [int(p.read_text()) for p in (settings.state_dir / "pids").glob("*.pid")]
    family = {pid: _descendants(pid) for pid in pids}
    assert any(family.values()), "the worker should be running the flow in a child process"

    down(settings)

    everyone = [pid for pid, below in family.items() for pid in (pid, *below)]
    assert [pid for pid in everyone if _lives(pid)] == []
    assert not list((settings.state_dir / "pids").glob("*.pid"))
    assert not (settings.state_dir / "stack.env").exists()


def _lives(pid: int) -> bool:
    """Running, or stopped but not yet reaped by a parent other than us (a zombie is gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def _read_run(flow_run_id):
    with get_client(sync_client=True) as client:
        return client.read_flow_run(flow_run_id)
