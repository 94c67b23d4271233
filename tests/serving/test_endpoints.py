"""Several endpoints in one server process: each with its own deployments, traffic, keys and
state, created, listed and deleted with the server's admin key, kept across a restart."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mlops.core.errors import EndpointError
from mlops.endpoint.local import LocalEndpointClient
from mlops.endpoint.payloads import frame_to_request
from tests.conftest import free_port
from tests.serving._models import FEATURES
from tests.serving.conftest import (
    ADMIN_KEY,
    SCORING_KEY,
    Running,
    Toys,
    roots_env,
    running_server,
    server_env,
    stop,
)
from tools.endpoint_process import start_endpoint

pytestmark = [pytest.mark.service, pytest.mark.slow]

SERVER_ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture(scope="module")
def hosting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """A server of its own: these tests create and delete endpoints."""
    yield from running_server(tmp_path_factory, "hosting-state")


def _named(server_url: str, name: str) -> LocalEndpointClient:
    """A client of `name` that knows only the server's admin key: its first call creates it."""
    return LocalEndpointClient(f"{server_url}/endpoints/{name}", None, None, timeout=30,
                               server_admin_key=ADMIN_KEY)


def _serve(client: LocalEndpointClient, url: str) -> None:
    client.put_deployment("blue", url)
    client.set_traffic({"blue": 100})


def _payload(toys: Toys) -> dict:
    return frame_to_request(toys.frame[FEATURES].head(4))


def test_two_endpoints_keep_their_own_deployments_traffic_counters_and_keys(hosting, toys):
    with _named(hosting.url, "churn-ep") as churn, _named(hosting.url, "diabetes-ep") as diabetes:
        _two_endpoints(hosting, toys, churn, diabetes)


def _two_endpoints(hosting: Running, toys: Toys, churn: LocalEndpointClient,
                   diabetes: LocalEndpointClient) -> None:
    _serve(churn, toys.v1.url)
    _serve(diabetes, toys.v2.url)
    churn.put_deployment("green", toys.v2.url)
    churn.set_traffic({"blue": 20, "green": 80})

    assert churn.score(_payload(toys), deployment="blue")["model_version"] == "1"
    assert diabetes.score(_payload(toys))["model_version"] == "2"
    assert churn.state()["traffic"] == {"blue": 20, "green": 80}
    assert diabetes.state()["traffic"] == {"blue": 100}
    assert set(diabetes.state()["deployments"]) == {"blue"}
    assert hosting.client.state()["deployments"] == {}  # the default endpoint is untouched
    assert diabetes.metrics()["blue"].requests == 1
    assert churn.metrics()["blue"].requests == 1 and "green" not in churn.metrics()

    keys = {name: json.loads((hosting.state_dir / "endpoint" / "endpoints" / name
                              / "keys.json").read_text()) for name in ("churn-ep", "diabetes-ep")}
    assert len({SCORING_KEY, ADMIN_KEY, *(k for pair in keys.values() for k in pair.values())}) == 6
    with httpx.Client(base_url=hosting.url, timeout=30) as http:
        def status(method: str, path: str, key: str) -> int:
            return http.request(method, path, json=_payload(toys),
                                headers={"Authorization": f"Bearer {key}"}).status_code

        assert status("POST", "/endpoints/diabetes-ep/score", keys["diabetes-ep"]["key"]) == 200
        assert status("POST", "/endpoints/diabetes-ep/score", keys["churn-ep"]["key"]) == 401
        assert status("POST", "/endpoints/diabetes-ep/score", SCORING_KEY) == 401
        assert status("GET", "/endpoints/diabetes-ep/admin/state",
                      keys["diabetes-ep"]["admin_key"]) == 200
        assert status("GET", "/endpoints/diabetes-ep/admin/state",
                      keys["churn-ep"]["admin_key"]) == 401
        assert status("GET", "/endpoints/diabetes-ep/admin/state", ADMIN_KEY) == 401
        assert status("GET", "/admin/state", keys["diabetes-ep"]["admin_key"]) == 401
        assert status("POST", "/score", keys["diabetes-ep"]["key"]) == 401
        # creating and listing endpoints takes the server's admin key, no endpoint's own
        assert status("PUT", "/endpoints/other-ep", keys["diabetes-ep"]["admin_key"]) == 401
        assert status("GET", "/endpoints", SCORING_KEY) == 401
    listed = diabetes.endpoints()
    assert listed == hosting.client.endpoints()
    assert {"local-endpoint", "churn-ep", "diabetes-ep"} <= set(listed)
    assert listed["churn-ep"]["traffic"] == {"blue": 20, "green": 80}
    assert {"churn-ep", "diabetes-ep"} <= set(hosting.client.state()["endpoints"])


def test_each_endpoint_logs_its_requests_in_its_own_folder(hosting, toys):
    with _named(hosting.url, "logged-ep") as client:
        _serve(client, toys.v2.url)
        client.score(_payload(toys))
    folder = hosting.state_dir / "inference" / "logged-ep"
    deadline = time.monotonic() + 10
    while not list(folder.glob("date=*/part-*.parquet")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert list(folder.glob("date=*/part-*.parquet"))
    assert not (hosting.state_dir / "inference" / "local-endpoint").exists()


@pytest.mark.parametrize(("name", "valid"), [
    ("abc", True), ("a" * 32, True), ("Model-2", True),
    ("ab", False), ("a" * 33, False), ("9lives", False), ("-abc", False), ("abc-", False),
    ("a_bc", False), ("a.bc", False),
])
def test_endpoint_names_follow_azure_ml(hosting, name, valid):
    with httpx.Client(base_url=hosting.url, timeout=30) as http:
        answer = http.put(f"/endpoints/{name}", headers=SERVER_ADMIN)
        if valid:
            assert answer.status_code == 200 and answer.json()["endpoint"] == name
            assert http.delete(f"/endpoints/{name}", headers=SERVER_ADMIN).status_code == 200
        else:
            assert answer.status_code == 422
            assert f"endpoint name '{name}' must be 3-32 letters" in answer.json()["error"]
            assert not (hosting.state_dir / "endpoint" / "endpoints" / name).exists()


def test_an_unknown_endpoint_is_a_404_that_names_the_known_ones(hosting):
    with httpx.Client(base_url=hosting.url, timeout=30) as http:
        for method, path in (("POST", "/endpoints/nope-ep/score"),
                             ("GET", "/endpoints/nope-ep/health"),
                             ("GET", "/endpoints/nope-ep/admin/state")):
            answer = http.request(method, path, headers=SERVER_ADMIN)
            assert answer.status_code == 404, path
            assert "no endpoint named 'nope-ep'; known: [" in answer.json()["error"]
            assert "'local-endpoint'" in answer.json()["error"]
        answer = http.get("/endpoints/nope-ep", headers=SERVER_ADMIN)
        assert answer.status_code == 404
        unknown_route = http.get("/endpoints/local-endpoint/nothing", headers=SERVER_ADMIN)
        assert unknown_route.status_code == 404
        assert "no route GET /endpoints/local-endpoint/nothing" in unknown_route.json()["error"]


def test_creating_is_idempotent_and_deleting_needs_no_deployments(hosting, toys):
    with httpx.Client(base_url=hosting.url, timeout=30) as http:
        first = http.put("/endpoints/short-lived", headers=SERVER_ADMIN).json()
        again = http.put("/endpoints/short-lived", headers=SERVER_ADMIN).json()
        assert first["created"] is True and again["created"] is False
        assert (first["key"], first["admin_key"]) == (again["key"], again["admin_key"])
        with LocalEndpointClient(f"{hosting.url}/endpoints/short-lived", first["key"],
                                 first["admin_key"], timeout=30) as client:
            client.put_deployment("blue", toys.v1.url)
            refused = http.delete("/endpoints/short-lived", headers=SERVER_ADMIN)
            assert refused.status_code == 409
            assert "still has deployments ['blue']; delete them first" in refused.json()["error"]
            client.delete_deployment("blue")
        assert http.delete("/endpoints/short-lived", headers=SERVER_ADMIN).json() == {
            "deleted": "short-lived"}
        assert not (hosting.state_dir / "endpoint" / "endpoints" / "short-lived").exists()
        assert http.get("/endpoints/short-lived/ready").status_code == 404
        default = http.delete("/endpoints/local-endpoint", headers=SERVER_ADMIN)
        assert default.status_code == 409 and "default endpoint" in default.json()["error"]
        # the default endpoint also answers under its name, with its own keys
        assert http.get("/endpoints/local-endpoint/admin/state", headers=SERVER_ADMIN).json()[
            "endpoint"] == "local-endpoint"


def test_a_restart_keeps_every_endpoint(tmp_path: Path, toys, tmp_path_factory):
    env = {**server_env(**roots_env(tmp_path_factory)), "MLOPS_ENDPOINT_COLLECT": "false"}
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_endpoint(tmp_path, port, env)
    try:
        with (LocalEndpointClient(url, SCORING_KEY, ADMIN_KEY, timeout=30) as default,
              _named(url, "kept-ep") as named, _named(url, "empty-ep") as empty):
            _serve(default, toys.v1.url)
            _serve(named, toys.v2.url)
            named.put_deployment("green", toys.v1.url)
            named.set_traffic({"blue": 40, "green": 60})
            empty.state()
            before = named.state()
    finally:
        stop(proc)
    keys = json.loads((tmp_path / "endpoint" / "endpoints" / "kept-ep" / "keys.json").read_text())

    proc = start_endpoint(tmp_path, port, env)
    try:
        with (LocalEndpointClient(url, SCORING_KEY, ADMIN_KEY, timeout=30) as default,
              LocalEndpointClient(f"{url}/endpoints/kept-ep", keys["key"], keys["admin_key"],
                                  timeout=30) as again):
            deadline = time.monotonic() + 20
            while not (again.ready() and default.ready()):
                assert time.monotonic() < deadline, "restored endpoints never became ready"
                time.sleep(0.1)
            after = again.state()
            assert after["traffic"] == before["traffic"] == {"blue": 40, "green": 60}
            assert {n: d["model_url"] for n, d in after["deployments"].items()} == {
                "blue": toys.v2.url, "green": toys.v1.url}
            assert again.score(_payload(toys), deployment="blue")["model_version"] == "2"
            assert default.state()["traffic"] == {"blue": 100}
            assert default.score(_payload(toys))["model_version"] == "1"
            assert {"kept-ep", "empty-ep"} <= set(default.state()["endpoints"])
    finally:
        stop(proc)


def test_a_client_without_the_server_key_cannot_create_an_endpoint(hosting):
    with LocalEndpointClient(f"{hosting.url}/endpoints/nobody-ep", None, None, timeout=30,
                             server_admin_key="wrong") as client:
        with pytest.raises(EndpointError, match="answered 401"):
            client.state()
    with LocalEndpointClient(f"{hosting.url}/endpoints/nobody-ep", None, None,
                             timeout=30) as keyless:
        with pytest.raises(EndpointError, match="no admin key for"):
            keyless.state()
    assert not (hosting.state_dir / "endpoint" / "endpoints" / "nobody-ep").exists()
