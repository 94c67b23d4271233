"""The local endpoint over real HTTP: answers, bad requests, auth, routing, control API."""

from __future__ import annotations

import threading
import time
from collections import Counter

import httpx
import orjson
import pandas as pd
import pytest

from mlops.core.errors import EndpointError
from mlops.endpoint.local import LocalEndpointClient
from mlops.endpoint.payloads import frame_to_request
from serving.config import state_fingerprint
from tests.serving._models import FEATURES
from tests.serving.conftest import ADMIN_KEY, SCORING_KEY

pytestmark = [pytest.mark.service, pytest.mark.slow]

AUTH = {"Authorization": f"Bearer {SCORING_KEY}"}
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture(scope="module")
def rows(toys) -> pd.DataFrame:
    return toys.frame[FEATURES].head(8)


@pytest.fixture
def http(server):
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def test_answers_equal_the_pipeline_with_model_details(blue_green, toys, rows, http):
    response = http.post(
        "/score?return_probabilities=true", content=orjson.dumps(frame_to_request(rows)),
        headers={**AUTH, "x-request-id": "req-123"},
    )
    assert response.status_code == 200
    body = response.json()
    model = toys.bundle(toys.v1).model
    assert body["predictions"] == model.predict(rows).tolist()
    assert body["classes"] == [0, 1]
    assert len(body["probabilities"]) == len(rows)
    assert (body["model_name"], body["model_version"], body["deployment"]) == ("toy", "1", "blue")
    assert response.headers["azureml-model-deployment"] == "blue"
    assert response.headers["x-request-id"] == "req-123"


def test_header_reaches_a_deployment_without_traffic(blue_green, toys, rows):
    body = blue_green.score(frame_to_request(rows), deployment="green")
    assert (body["deployment"], body["model_version"]) == ("green", "2")
    assert body["predictions"] == toys.bundle(toys.v2).model.predict(rows).tolist()


@pytest.mark.parametrize(
    ("body", "headers", "status", "words"),
    [
        (b"{not json", AUTH, 400, "not valid JSON"),
        (b'{"rows": []}', AUTH, 400, "input_data"),
        (b'[{"num_a": 1.0}]', AUTH, 422, "'Tenure Months', 'cat_c'"),
        (b'[{"num_a": "x", "tenure months": 1, "cat_c": "red"}]', AUTH, 422, "'num_a'"),
        (b"[]", AUTH, 422, "no rows"),
        (b'{"input_data": {}}', AUTH, 422, "no rows"),
        (b"[]", {}, 401, "key"),
        (b"[]", {"Authorization": "Bearer wrong"}, 401, "key"),
        (b"[]", ADMIN, 401, "scoring key"),
        (b"[]", {**AUTH, "azureml-model-deployment": "purple"}, 404, "purple"),
    ],
)
def test_bad_requests(blue_green, http, body, headers, status, words):
    response = http.post("/score", content=body, headers=headers)
    assert response.status_code == status
    assert words in response.json()["error"]
    assert response.json()["request_id"] == response.headers["x-request-id"]


def test_body_over_the_limit_is_413(server, http):
    big = b"[" + b" " * (64 * 1024 * 1024) + b"]"
    response = http.post("/score", content=big, headers=AUTH)
    assert response.status_code == 413


def test_unknown_route_and_method(server, http):
    assert http.get("/nope").status_code == 404
    assert http.get("/score").status_code == 405


def test_admin_api_needs_the_admin_key(server, http):
    for headers in ({}, AUTH):
        assert http.get("/admin/state", headers=headers).status_code == 401
        put = http.put("/admin/traffic", json={"blue": 100}, headers=headers)
        assert put.status_code == 401
    scoring_only = LocalEndpointClient(server.url, SCORING_KEY, SCORING_KEY)
    with pytest.raises(EndpointError, match="401"):
        scoring_only.state()


def test_health_and_ready(blue_green, server, http):
    assert http.get("/health").json() == {
        "status": "alive", "pid": server.proc.pid,
        "state": state_fingerprint(server.state_dir / "endpoint"),
    }
    assert http.get("/ready").status_code == 200
    assert blue_green.ready()


def test_traffic_must_sum_to_100_and_name_deployments(blue_green):
    for table, words in [
        ({"blue": 60, "green": 30}, "sum to 100, got 90"),
        ({"blue": 100, "purple": 0}, "unknown deployment 'purple'"),
        ({"blue": 100.0}, "whole number"),
        ({"blue": 150, "green": -50}, "whole number"),
        ([100], "expected an object"),
    ]:
        with pytest.raises(EndpointError, match="422") as caught:
            blue_green.set_traffic(table)
        assert words in str(caught.value)
    assert blue_green.state()["traffic"] == {"blue": 100, "green": 0}


def test_bad_deployment_puts(blue_green, tmp_path):
    with pytest.raises(EndpointError, match="422.*could not load"):
        blue_green.put_deployment("green", str(tmp_path / "missing"))
    with pytest.raises(EndpointError, match="422.*name"):
        blue_green.put_deployment("no_underscores!", str(tmp_path))
    with pytest.raises(EndpointError, match="422.*model_url"):
        blue_green._admin("PUT", "/admin/deployments/green", {"url": "x"})
    assert blue_green.state()["deployments"]["green"]["status"] == "ready"


def test_state_says_how_each_deployment_scores(blue_green):
    deployments = blue_green.state()["deployments"]
    assert {deployments[n]["scoring"] for n in ("blue", "green")} == {"fast path"}


def test_delete_refuses_with_traffic_and_drains(blue_green, toys):
    with pytest.raises(EndpointError, match="409.*move it elsewhere"):
        blue_green.delete_deployment("blue")
    blue_green.put_deployment("extra", toys.v1.url)
    assert blue_green.delete_deployment("extra") == {"deleted": "extra", "drained": True}
    with pytest.raises(EndpointError, match="404"):
        blue_green.delete_deployment("extra")
    blue_green.set_traffic({"green": 100})
    blue_green.delete_deployment("blue")
    assert set(blue_green.state()["deployments"]) == {"green"}


def test_routing_by_weight(blue_green, rows):
    blue_green.set_traffic({"blue": 80, "green": 20})
    payload = frame_to_request(rows.head(1))
    seen = Counter(blue_green.score(payload)["deployment"] for _ in range(200))
    assert set(seen) == {"blue", "green"}
    assert 0.08 <= seen["green"] / 200 <= 0.35, seen


def test_replace_drains_in_flight_requests(blue_green, toys):
    big = pd.concat([toys.frame[FEATURES]] * 400, ignore_index=True)  # 120k rows
    payload = frame_to_request(big)
    answer: dict = {}

    def slow_request() -> None:
        try:
            answer["body"] = blue_green.score(payload, deployment="blue")
        except EndpointError as exc:
            answer["error"] = exc
        answer["done"] = time.monotonic()

    thread = threading.Thread(target=slow_request)
    thread.start()
    deadline = time.monotonic() + 20
    while blue_green.state()["deployments"]["blue"]["inflight"] == 0:
        assert time.monotonic() < deadline and thread.is_alive(), answer
        time.sleep(0.005)
    replaced = blue_green.put_deployment("blue", toys.v2.url)
    # the put returned only after the old model finished the slow request
    assert replaced["drained"] is True and replaced["model_version"] == "2"
    thread.join(30)
    assert answer["body"]["model_version"] == "1"
    assert len(answer["body"]["predictions"]) == len(big)


def test_inference_collection_writes_parquet(blue_green, server, rows, http):
    response = http.post(
        "/score", content=orjson.dumps(frame_to_request(rows)),
        headers={**AUTH, "x-request-id": "collect-me"},
    )
    assert response.status_code == 200
    folder = server.state_dir / "inference" / "local-endpoint"
    deadline = time.monotonic() + 10
    found = pd.DataFrame()
    while found.empty and time.monotonic() < deadline:
        time.sleep(0.2)
        files = sorted(folder.glob("date=*/part-*.parquet"))
        if files:
            table = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
            found = table[table["request_id"] == "collect-me"]
    assert len(found) == len(rows)
    assert {*FEATURES, "prediction", "deployment", "model_name", "model_version", "scored_at",
            "request_id"} <= set(found.columns)
    assert found["Tenure Months"].tolist() == rows["Tenure Months"].tolist()
    assert found["prediction"].tolist() == response.json()["predictions"]
    assert set(found["deployment"]) == {"blue"}
    assert not list(folder.glob("date=*/.*tmp"))
