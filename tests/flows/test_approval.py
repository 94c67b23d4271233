"""The approval gate: the run pauses after the smoke test; a person approves or rejects it
through Prefect's resume API (what the UI's form calls)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from prefect import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

from flows.training import training
from mlops.registry.local import LocalRegistry
from tests.conftest import spec_endpoint, write_spec

pytestmark = [pytest.mark.slow, pytest.mark.service, pytest.mark.usefixtures("prefect_server")]


class Background:
    """The training flow in a thread, so the test can act as the reviewer meanwhile."""

    def __init__(self, run_name: str, **parameters: Any) -> None:
        self.state = None
        self.run_name = run_name
        flow = training.with_options(flow_run_name=run_name)
        self.thread = threading.Thread(
            target=lambda: setattr(self, "state", flow(**parameters, return_state=True))
        )
        self.thread.start()

    def wait_paused(self, timeout_s: float = 300):
        deadline = time.monotonic() + timeout_s
        with get_client(sync_client=True) as client:
            while time.monotonic() < deadline:
                runs = client.read_flow_runs(
                    flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=[self.run_name])),
                    limit=1, offset=0,
                )
                if runs and runs[0].state and runs[0].state.is_paused():
                    return runs[0]
                assert self.thread.is_alive(), f"the run ended without pausing: {self.state}"
                time.sleep(0.5)
        raise AssertionError(f"{self.run_name} did not pause within {timeout_s} s")

    def result(self) -> dict:
        self.thread.join(timeout=300)
        assert self.state is not None and self.state.is_completed(), self.state
        return self.state.result()


def _live(state: dict) -> dict[str, int]:
    return {name: share for name, share in state["traffic"].items() if share}


def _resume(flow_run_id, **answer: Any) -> None:
    with get_client(sync_client=True) as client:
        client.resume_flow_run(flow_run_id, run_input=answer)


def test_rejected_candidate_leaves_traffic_and_champion_alone(use_stack, churn_data, tmp_path):
    spec = write_spec(tmp_path, "gate-reject", {"name": "gatereject", "evaluation.minimum": 0.5})
    endpoint = spec_endpoint(spec, use_stack)
    registry = LocalRegistry(use_stack.registry_location)
    before = endpoint.state()

    run = Background("gate-reject-1", spec_path=spec, data_url=churn_data, require_approval=True)
    paused = run.wait_paused()
    # the reviewer sees the table in the pause's description, and the candidate on its slot
    keyset = paused.state.state_details.run_input_keyset
    with get_client(sync_client=True) as client:
        description = client.read_flow_run_input(paused.id, keyset["description"])
    assert "Approve gatereject v1?" in description and "| metric | candidate |" in description
    waiting = endpoint.state()
    assert any(str(d.get("model_version")) == "1" for d in waiting["deployments"].values())
    assert _live(waiting) == _live(before)

    _resume(paused.id, approve=False, comment="numbers look off")
    outcome = run.result()
    assert outcome["outcome"] == "rejected" and "numbers look off" in outcome["reason"]
    assert registry.alias("gatereject") is None
    assert _live(endpoint.state()) == _live(before)
    assert endpoint.state()["deployments"].keys() == before["deployments"].keys()

    # no answer in time rejects too
    late = Background(
        "gate-reject-2", spec_path=spec, data_url=churn_data, require_approval=True,
        approval_timeout_s=3,
    )
    assert late.result()["outcome"] == "rejected"
    assert registry.alias("gatereject") is None


def test_approved_candidate_takes_traffic(use_stack, churn_data, tmp_path):
    spec = write_spec(tmp_path, "gate-approve", {"name": "gateapprove", "evaluation.minimum": 0.5})
    endpoint = spec_endpoint(spec, use_stack)
    registry = LocalRegistry(use_stack.registry_location)

    run = Background("gate-approve-1", spec_path=spec, data_url=churn_data, require_approval=True)
    paused = run.wait_paused()
    assert registry.alias("gateapprove") is None  # nothing moves before the answer
    _resume(paused.id, approve=True, comment="ship it")
    outcome = run.result()
    assert outcome["outcome"] == "promoted"
    assert registry.alias("gateapprove") == outcome["version"]
    state = endpoint.state()
    live = max(state["traffic"], key=lambda name: state["traffic"][name])
    assert state["traffic"][live] == 100
    assert str(state["deployments"][live]["model_version"]) == str(outcome["version"])
