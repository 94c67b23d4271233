"""Notifications end to end on the session's Prefect server: the automations of automations/
send through a custom webhook block to a receiver started here, for a failed run, a rejected
candidate, a drift-triggered retraining and a rollback, each naming the model, what happened
and the run's link."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from prefect import flow, get_client

from flows.drift_check import drift_check
from flows.training import training
from mlops.core.settings import Settings
from tests.conftest import write_spec
from tests.flows.test_drift_check import DRIFT, _batch, _champion
from tools.notifications import install_automations, read_automations

pytestmark = [pytest.mark.slow, pytest.mark.service, pytest.mark.usefixtures("prefect_server")]


class Receiver:
    """A webhook receiver on a free loopback port; `messages` holds each JSON body posted."""

    def __init__(self) -> None:
        self.messages: list[dict] = []
        received = self.messages

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, words: list[str], timeout_s: float = 90) -> dict:
        """The first message whose subject and body hold every one of `words`."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for message in list(self.messages):
                text = f"{message['subject']}\n{message['body']}"
                if all(w in text for w in words):
                    return message
            time.sleep(0.5)
        raise AssertionError(f"no message with {words}; received {self.messages}")


@pytest.fixture(scope="module")
def receiver(prefect_server) -> Iterator[Receiver]:
    found = Receiver()
    settings = Settings(notify_webhook_url=found.url)
    assert install_automations(settings) == [a["name"] for a in read_automations()]
    yield found
    # later tests share the server: their failed runs must not post to a closed receiver
    with get_client(sync_client=True) as client:
        for spec in read_automations():
            for installed in client.read_automations_by_name(spec["name"]):
                client.delete_automation(installed.id)
    found.server.shutdown()
    found.server.server_close()


@pytest.fixture
def state(tmp_path, monkeypatch) -> Settings:
    monkeypatch.setenv("MLOPS_STATE_DIR", str(tmp_path / "state"))
    return Settings(state_dir=tmp_path / "state")


def _run_link(run_id) -> str:
    return f"/runs/flow-run/{run_id}"


def test_installing_twice_replaces_the_automations(receiver):
    install_automations(Settings(notify_webhook_url=receiver.url))
    with get_client(sync_client=True) as client:
        for spec in read_automations():
            assert len(client.read_automations_by_name(spec["name"])) == 1


def test_a_failed_training_run_is_announced(receiver, state, tmp_path):
    spec = write_spec(tmp_path, "notify-fail", {"name": "notify-fail", "data.url":
                                                str(tmp_path / "nothing-here")})
    run = training(spec_path=spec, return_state=True)
    assert run.is_failed()
    run_id = run.state_details.flow_run_id
    message = receiver.wait_for([str(run_id)])
    assert "training run" in message["subject"] and "Failed" in message["subject"]
    assert f"Model spec: {spec}" in message["body"]
    assert _run_link(run_id) in message["body"]


def test_a_failed_drift_check_is_announced(receiver, state, tmp_path):
    missing = str(tmp_path / "notify-no-spec.yaml")
    run = drift_check(spec_path=missing, return_state=True)
    assert run.is_failed()
    message = receiver.wait_for([str(run.state_details.flow_run_id)])
    assert "drift-check run" in message["subject"] and f"Model spec: {missing}" in message["body"]


def test_a_drift_triggered_retraining_is_announced(receiver, state, tmp_path):
    training.to_deployment(name="training-manual").apply()
    spec = write_spec(tmp_path, "notify-drift", {"name": "notify-drift",
                                                 "drift": {"drift_share": 0.3}})
    _champion(state, "notify-drift")
    run = drift_check(spec_path=spec, data_url=_batch(tmp_path, 2000, seed=61, drift=DRIFT),
                      return_state=True)
    result = run.result()
    assert result["training_run"]
    message = receiver.wait_for(["notify-drift", "drift, retraining started"])
    assert result["training_run"] in message["body"]
    assert "5 of 13 columns drifted" in message["body"]
    assert _run_link(run.state_details.flow_run_id) in message["body"]


def test_a_rejected_candidate_is_announced(receiver, use_stack, churn_data, tmp_path):
    spec = write_spec(tmp_path, "notify-reject", {
        "name": "notify-reject", "data.url": churn_data, "evaluation.minimum": 0.5,
        "model.params": {"max_iter": 20}, "evaluation.bootstrap.samples": 50})
    assert training(spec_path=spec)["outcome"] == "promoted"
    second = training(spec_path=spec, return_state=True)
    assert second.result()["outcome"] == "retained"  # the same model does not beat itself
    message = receiver.wait_for(["notify-reject", "candidate rejected"])
    assert "Why: the candidate is champion v1" in message["body"]
    assert _run_link(second.state_details.flow_run_id) in message["body"]


def test_a_rollback_is_announced(receiver):
    @flow(name="rollback")
    def rollback(spec_path: str) -> None:
        """Stands in for the release flow of that name: the automation matches the name."""

    run = rollback(spec_path="configs/notify-rb.yaml", return_state=True)
    message = receiver.wait_for(["rollback", "configs/notify-rb.yaml"])
    assert "Completed" in message["subject"]
    assert _run_link(run.state_details.flow_run_id) in message["body"]
