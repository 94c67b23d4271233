"""One training run per model, several models at once: two models' runs started together on
the session's Prefect server, both models in one state folder and served by one endpoint
server, each at its own endpoint.

Each run is its own process (as a worker starts them); the test reads from the API when each
run took its model's slot ("Holding the training slot" log) and when its last task ended, and
asserts on those times: one model's runs never overlap, the two models' runs do. Afterwards
each model's endpoint answers with its own champion's predictions.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect import get_client
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterId,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.client.schemas.sorting import FlowRunSort
from prefect.settings import PREFECT_API_URL

from mlops.core.settings import Settings
from mlops.core.spec import load_spec
from mlops.data.loading import conform_columns
from mlops.endpoint.backend import endpoint_for
from mlops.endpoint.payloads import frame_to_request
from mlops.registry.local import LocalRegistry
from tasks._slots import slot_name
from tests.conftest import ROOT, free_port, write_spec
from tools.datasets import make_churn
from tools.endpoint_process import endpoint_up
from tools.stack import down

pytestmark = [pytest.mark.slow, pytest.mark.service, pytest.mark.usefixtures("prefect_server")]

RUN = "from flows.training import training; training(spec_path={!r}, force=True)"
# the four runs take 13-60 s here; past this a run is stuck, and the test says where, well
# before pytest's own timeout (600 s) would end it without the runs' logs
DEADLINE_S = 360
REPORT_S = 60


@pytest.fixture
def models(tmp_path, churn_data) -> Iterator[tuple[Settings, list[str]]]:
    """One state folder and endpoint server; two models' specs (slot-a, slot-b)."""
    settings = Settings(state_dir=tmp_path / "state",
                        endpoint_url=f"http://127.0.0.1:{free_port()}")
    specs = [
        write_spec(tmp_path, name, {
            "name": name, "data.url": churn_data, "evaluation.minimum": 0.5,
            "model.params": {"max_iter": 20 + n}, "evaluation.bootstrap.samples": 50,
        })
        for n, name in enumerate(("slot-a", "slot-b"))
    ]
    try:
        endpoint_up(settings)
        yield settings, specs
    finally:
        down(settings)


def _start(spec: str, settings: Settings, log) -> subprocess.Popen:
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(),
           "MLOPS_STATE_DIR": str(settings.state_dir),
           "MLOPS_ENDPOINT_URL": settings.endpoint_url}
    return subprocess.Popen([sys.executable, "-c", RUN.format(spec)], env=env, cwd=ROOT,
                            stdout=log, stderr=subprocess.STDOUT)


def _wait(procs: list[subprocess.Popen], specs: list[str], log: Path) -> list[int]:
    """The runs' exit codes; fails with the runs' states and logs when one outlives the
    deadline."""
    deadline = time.monotonic() + DEADLINE_S
    try:
        return [proc.wait(max(0.0, deadline - time.monotonic())) for proc in procs]
    except subprocess.TimeoutExpired:
        codes = [proc.poll() for proc in procs]  # None: still running
        for proc in procs:
            proc.kill()
        pytest.fail(f"the training runs were still going after {DEADLINE_S} s; exit codes "
                    f"{codes}\n{_report_within(REPORT_S, specs)}\n"
                    f"{log.read_text(errors='replace')[-6000:]}")


def _report_within(seconds: float, specs: list[str]) -> str:
    """`_stuck_report`, or why there is none: a server that does not answer must not keep
    the test past pytest's timeout."""
    found: list[str] = []

    def report() -> None:
        try:
            found.append(_stuck_report(specs))
        except Exception as exc:  # noqa: BLE001 - the report of a failure, whatever it is
            found.append(f"no report from the Prefect server: {exc!r}")

    thread = threading.Thread(target=report, daemon=True)
    thread.start()
    thread.join(seconds)
    return found[0] if found else f"no report: the Prefect server did not answer in {seconds} s"


def _training_runs(client, specs: list[str]) -> list:
    """The training runs of `specs`, among the newest (the session's server holds every
    earlier test's runs too, and answers a page at a time)."""
    runs = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["training"])),
                                 sort=FlowRunSort.EXPECTED_START_TIME_DESC)
    return [run for run in runs if run.parameters.get("spec_path") in specs]


def _logs(client, run) -> list:
    return client.read_logs(
        log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run.id])), limit=200)


def _stuck_report(specs: list[str]) -> str:
    """Each training run's state and its last log lines, and each model's training slot."""
    lines = []
    with get_client(sync_client=True) as client:
        for spec in map(load_spec, specs):
            limit = client.read_global_concurrency_limit_by_name(slot_name(spec.name))
            lines.append(f"slot {limit.name}: {limit.active_slots} of {limit.limit} taken")
        for run in _training_runs(client, specs):
            last = [f"    {log.timestamp:%H:%M:%S} {log.message[:200]}"
                    for log in _logs(client, run)[-5:]]
            lines += [f"run {run.name} of {run.parameters['spec_path']}: {run.state}", *last]
    return "\n".join(lines)


def _held(spec: str) -> list[tuple]:
    """(slot taken, last task end) of each training run of `spec`, in order of taking."""
    held = []
    with get_client(sync_client=True) as client:
        for run in _training_runs(client, [spec]):
            tasks = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id])), limit=200)
            taken = [log.timestamp for log in _logs(client, run)
                     if "Holding the training slot" in log.message]
            assert taken, f"run {run.name} of {spec} never held its slot: {run.state}"
            held.append((min(taken), max(t.end_time for t in tasks if t.end_time)))
    return sorted(held)


def test_two_models_train_at_once_one_model_never_twice(models, tmp_path):
    settings, specs = models
    procs = []
    with open(tmp_path / "runs.log", "wb") as log:
        for spec in specs:
            procs += [_start(spec, settings, log), _start(spec, settings, log)]
        codes = _wait(procs, specs, tmp_path / "runs.log")
    assert codes == [0, 0, 0, 0], (tmp_path / "runs.log").read_text()[-4000:]

    (a1, a2), (b1, b2) = (_held(spec) for spec in specs)
    assert a1[1] <= a2[0], f"slot-a's two runs overlapped: {a1} {a2}"
    assert b1[1] <= b2[0], f"slot-b's two runs overlapped: {b1} {b2}"
    # the two models did not wait for each other: some run of one held its slot while a
    # run of the other held its own
    assert any(x[0] < y[1] and y[0] < x[1] for x in (a1, a2) for y in (b1, b2)), (a1, a2, b1, b2)
    _each_endpoint_serves_its_champion(settings, specs)


def _each_endpoint_serves_its_champion(settings: Settings, specs: list[str]) -> None:
    """The one server answers each model at its own endpoint with that model's champion."""
    registry = LocalRegistry(settings.registry_location)
    answers = []
    for spec in map(load_spec, specs):
        rows = conform_columns(make_churn(12, seed=3), spec)[
            [c.name for c in spec.feature_columns]]
        version = registry.alias(spec.model_name)
        with endpoint_for(spec, settings) as client:
            answer = client.score({**frame_to_request(rows), "return_probabilities": True})
        assert client.base_url.startswith(settings.endpoint_url), client.base_url
        assert int(answer["model_version"]) == version, (spec.name, answer)
        champion = registry.load(spec.model_name, version).model
        assert answer["probabilities"] == champion.predict_proba(rows).tolist(), spec.name
        answers.append(answer["probabilities"])
    assert answers[0] != answers[1], "the two endpoints answered with the same model"
