"""The local stack's staging endpoints (tools/environments.py): which the specs ask for, and a
real process started beside production's, on its keys, loading from the shared registry."""

from __future__ import annotations

import httpx
import pytest

from mlops.core.settings import Settings
from mlops.endpoint.local import LocalEndpointClient, _read_keys
from mlops.endpoint.payloads import frame_to_request
from serving.config import state_fingerprint
from tests.conftest import free_port, write_spec
from tests.serving._models import FEATURES, register_toy, toy_frame
from tools import environments
from tools.endpoint_process import endpoint_up
from tools.stack import down


def _staged(url: str) -> list[dict]:
    return [{"name": "staging", "endpoint": {"url": url}}, {"name": "production"}]


def _configs(tmp_path, *urls: str):
    """A configs folder with one churn-like spec per staging URL (models m0, m1, ...)."""
    folder = tmp_path / "configs"
    folder.mkdir()
    for n, url in enumerate(urls):
        write_spec(folder, f"m{n}", {"name": f"m{n}", "environments": _staged(url)})
    write_spec(folder, "plain", {"name": "plain"})  # no environments: nothing to start
    return folder


def test_staged_endpoints_are_the_specs_loopback_urls_one_per_port(tmp_path):
    configs = _configs(tmp_path, "http://127.0.0.1:8766/", "http://localhost:8766",
                       "http://127.0.0.1:8767", "http://staging.example.com:8766")
    assert environments.staged_endpoints(configs) == [
        environments.StagedEndpoint("staging", "http://127.0.0.1:8766", 8766),
        environments.StagedEndpoint("staging", "http://127.0.0.1:8767", 8767),
    ]


@pytest.mark.service
@pytest.mark.slow
def test_up_starts_staging_on_production_s_keys_and_down_stops_it(tmp_path, monkeypatch):
    monkeypatch.setenv("MLOPS_ENDPOINT_COLLECT", "false")
    for name in ("MLOPS_ENDPOINT_KEY", "MLOPS_ENDPOINT_ADMIN_KEY", "MLOPS_ENDPOINT_STATE_DIR"):
        monkeypatch.delenv(name, raising=False)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings = Settings(state_dir=tmp_path / "state", configs_dir=_configs(tmp_path, url),
                        endpoint_url=f"http://127.0.0.1:{free_port()}")
    endpoint_up(settings)
    try:
        assert len(environments.up(settings)) == 1
        folder = settings.state_dir.resolve() / "environments" / f"staging-{port}"
        pid_file = settings.state_dir / "pids" / f"endpoint-staging-{port}.pid"
        pid = pid_file.read_text()
        health = httpx.get(f"{url}/health", timeout=5).json()
        assert health["state"] == state_fingerprint(folder / "endpoint")
        environments.up(settings)  # already up for its folder: kept
        assert pid_file.read_text() == pid

        keys = _read_keys(settings.endpoint_state_dir)  # production's generated keys
        version = register_toy(settings.state_dir / "registry", toy_frame(), 5)
        with LocalEndpointClient(url, keys["key"], keys["admin_key"], timeout=60) as client:
            client.put_deployment("blue", version.url)  # the shared registry is a model root
            client.set_traffic({"blue": 100})
            rows = frame_to_request(toy_frame()[FEATURES].head(3))
            assert client.score(rows)["model_version"] == str(version.version)
    finally:
        down(settings)
    assert not pid_file.exists()
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{url}/health", timeout=2)
