"""A fresh endpoint: generated keys, 503 without traffic, and a restart that restores state."""

from __future__ import annotations

import json
import stat
import time

import pytest

from mlops.core.errors import EndpointError
from mlops.core.settings import Settings
from mlops.endpoint.local import LocalEndpointClient
from mlops.endpoint.payloads import frame_to_request
from tests.conftest import free_port
from tests.serving._models import FEATURES
from tests.serving.conftest import roots_env, stop
from tools.endpoint_process import start_endpoint

pytestmark = [pytest.mark.service, pytest.mark.slow]

NO_KEYS = {"MLOPS_ENDPOINT_KEY": "", "MLOPS_ENDPOINT_ADMIN_KEY": ""}


def _client(state_dir, port) -> LocalEndpointClient:
    settings = Settings(state_dir=state_dir, endpoint_url=f"http://127.0.0.1:{port}")
    return LocalEndpointClient.from_settings(settings)


def test_fresh_endpoint_then_restart_restores_it(tmp_path, toys, tmp_path_factory):
    env = {**NO_KEYS, **roots_env(tmp_path_factory)}
    port = free_port()
    payload = frame_to_request(toys.frame[FEATURES].head(5))
    proc = start_endpoint(tmp_path, port, env)
    try:
        keys_file = tmp_path / "endpoint" / "keys.json"
        assert stat.S_IMODE(keys_file.stat().st_mode) == 0o600
        keys = json.loads(keys_file.read_text())
        assert keys["key"] != keys["admin_key"]
        client = _client(tmp_path, port)
        client.put_deployment("blue", toys.v1.url)
        assert client.ready()  # nothing has traffic yet, so nothing to wait for
        with pytest.raises(EndpointError, match="503.*no deployment has traffic"):
            client.score(payload)
        client.put_deployment("green", toys.v2.url)
        client.set_traffic({"blue": 30, "green": 70})
        before = client.state()
        expected = client.score(payload, deployment="green")
    finally:
        stop(proc)
    log = (tmp_path / "logs" / f"endpoint-{port}.log").read_text()
    assert keys["key"] not in log and keys["admin_key"] not in log

    proc = start_endpoint(tmp_path, port, env)
    try:
        client = _client(tmp_path, port)
        client.wait_until_healthy(10)
        deadline = time.monotonic() + 20
        while not client.ready():
            assert time.monotonic() < deadline, "restored deployments never became ready"
            time.sleep(0.1)
        after = client.state()
        assert after["traffic"] == before["traffic"] == {"blue": 30, "green": 70}
        for name in ("blue", "green"):
            assert after["deployments"][name]["model_url"] == before["deployments"][name][
                "model_url"]
            assert after["deployments"][name]["status"] == "ready"
        assert client.score(payload, deployment="green") == expected
        assert json.loads((tmp_path / "endpoint" / "keys.json").read_text()) == keys
    finally:
        stop(proc)


def test_unreachable_endpoint_is_an_endpoint_error():
    client = LocalEndpointClient(f"http://127.0.0.1:{free_port()}", "k", "a", timeout=2)
    with pytest.raises(EndpointError, match="not reachable"):
        client.health()
