"""The deploy protocol under steady load: no failed request, no version the table forbade.

Both the raw traffic changes of the protocol and a rollback the way a person does it (the
``rollback`` flow that ``mlops rollback`` runs: plan, flip, champion, history) are under load.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import httpx
import orjson
import pytest

from mlops.endpoint.payloads import frame_to_request
from mlops.registry.local import LocalRegistry
from tests.conftest import write_spec
from tests.serving._models import FEATURES, MODEL, register_pipeline, toy_frame, toy_pipeline
from tests.serving.conftest import ADMIN_KEY, SCORING_KEY

pytestmark = [pytest.mark.service, pytest.mark.slow]

MAX_LOAD_S = 8.0


@dataclass(frozen=True)
class Outcome:
    sent: float
    done: float
    status: int
    deployment: str
    version: str


def _load(url: str, body: bytes, stop: threading.Event, out: list[Outcome],
          max_s: float = MAX_LOAD_S) -> None:
    """Requests one after another on loopback until told to stop (or `max_s` passes)."""
    headers = {"Authorization": f"Bearer {SCORING_KEY}", "content-type": "application/json"}
    end = time.monotonic() + max_s
    with httpx.Client(base_url=url, timeout=10) as http:
        while not stop.is_set() and time.monotonic() < end:
            sent = time.monotonic()
            try:
                response = http.post("/score", content=body, headers=headers)
            except httpx.HTTPError:
                out.append(Outcome(sent, time.monotonic(), 0, "", ""))
                continue
            answer = response.json() if response.status_code == 200 else {}
            out.append(Outcome(sent, time.monotonic(), response.status_code,
                               answer.get("deployment", ""), answer.get("model_version", "")))


def _allowed(outcome: Outcome, marks: dict[str, float]) -> set[str]:
    """Versions the traffic table allowed while this request was in flight."""
    if outcome.done < marks["to_green_start"]:
        return {"1"}
    if outcome.sent > marks["to_green_end"] and outcome.done < marks["to_blue_start"]:
        return {"2"}
    if outcome.sent > marks["to_blue_end"]:
        return {"1"}
    return {"1", "2"}


def test_new_version_on_green_shift_and_roll_back_without_failures(blue_green, server, toys):
    client = blue_green
    client.put_deployment("green", toys.v1.url)  # green starts on the old version
    body = orjson.dumps(frame_to_request(toys.frame[FEATURES].head(3)))
    outcomes: list[Outcome] = []
    stop = threading.Event()
    load = threading.Thread(target=_load, args=(server.url, body, stop, outcomes))
    marks: dict[str, float] = {}
    load.start()
    try:
        time.sleep(0.4)
        client.put_deployment("green", toys.v2.url)  # 1. candidate on the idle deployment
        assert client.score(orjson.loads(body), deployment="green")["model_version"] == "2"
        time.sleep(0.3)
        marks["to_green_start"] = time.monotonic()
        client.set_traffic({"blue": 0, "green": 100})  # 4. traffic moves
        marks["to_green_end"] = time.monotonic()
        time.sleep(0.8)
        marks["to_blue_start"] = time.monotonic()
        client.set_traffic({"blue": 100, "green": 0})  # rollback is one traffic change
        marks["to_blue_end"] = time.monotonic()
        time.sleep(0.6)
    finally:
        stop.set()
        load.join(MAX_LOAD_S + 10)
    failed = [o for o in outcomes if o.status != 200]
    assert not failed, failed[:5]
    wrong = [o for o in outcomes if o.version not in _allowed(o, marks)]
    assert not wrong, wrong[:5]
    assert all((o.deployment, o.version) in {("blue", "1"), ("green", "2")} for o in outcomes
               if o.sent > marks["to_green_end"])
    versions = {o.version for o in outcomes if o.sent > marks["to_green_end"]
                and o.done < marks["to_blue_start"]}
    assert versions == {"2"}, "no request landed while green had all the traffic"
    assert len(outcomes) > 50


FLOW_LOAD_S = 120.0  # a bound only: the flow run's length depends on the Prefect server


@pytest.mark.usefixtures("prefect_server")
def test_mlops_rollback_under_load_fails_no_request(server, tmp_path, monkeypatch):
    """What a training run leaves (v1 warm on blue at 0%, v2 champion on green), then the
    rollback flow under load: every request answered, by v2 before it and by v1 after it."""
    from flows.rollback import rollback

    registry_dir = tmp_path / "registry"  # under the session's folders: a model root
    frame = toy_frame()
    v1 = register_pipeline(registry_dir, frame, toy_pipeline(frame, 5))
    v2 = register_pipeline(registry_dir, frame, toy_pipeline(frame, 25), previous_champion=1)
    LocalRegistry(str(registry_dir)).set_alias(MODEL, v2.version)
    client = server.client
    client.put_deployment("blue", v1.url)
    client.put_deployment("green", v2.url)
    client.set_traffic({"blue": 0, "green": 100})
    for name, value in (("STATE_DIR", str(tmp_path / "state")), ("ENDPOINT_URL", server.url),
                        ("ENDPOINT_KEY", SCORING_KEY), ("ENDPOINT_ADMIN_KEY", ADMIN_KEY)):
        monkeypatch.setenv(f"MLOPS_{name}", value)
    spec = write_spec(tmp_path, "toy", {"registry": {"backend": "local", "model_name": MODEL,
                                                     "url": str(registry_dir)}})
    body = orjson.dumps(frame_to_request(frame[FEATURES].head(3)))
    outcomes: list[Outcome] = []
    stop = threading.Event()
    load = threading.Thread(target=_load, args=(server.url, body, stop, outcomes, FLOW_LOAD_S))
    load.start()
    try:
        time.sleep(0.4)
        started = time.monotonic()
        result = rollback(spec_path=spec, reason="zero-downtime test")
        ended = time.monotonic()
        time.sleep(0.4)
    finally:
        stop.set()
        load.join(FLOW_LOAD_S + 10)
    assert result["how"] == "traffic flip to the warm deployment 'blue'"
    failed = [o for o in outcomes if o.status != 200]
    assert not failed, failed[:5]
    before = {o.version for o in outcomes if o.done < started}
    after = {o.version for o in outcomes if o.sent > ended}
    assert (before, after) == ({"2"}, {"1"})
    assert client.state()["traffic"] == {"blue": 100, "green": 0}
