"""Serving fixtures: two registered toy versions and one real endpoint for the session."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from mlops.endpoint.local import LocalEndpointClient
from mlops.registry.protocol import ModelVersion
from serving.bundle import Bundle, load_bundle
from tests.conftest import free_port
from tests.serving._models import register_toy, toy_frame
from tools.endpoint_process import start_endpoint

SCORING_KEY = "test-scoring-key"
ADMIN_KEY = "test-admin-key"
AUTH_HEADER = {"Authorization": f"Bearer {SCORING_KEY}"}


@dataclass(frozen=True)
class Toys:
    frame: pd.DataFrame
    v1: ModelVersion
    v2: ModelVersion

    def bundle(self, version: ModelVersion) -> Bundle:
        return load_bundle(version.url)


@pytest.fixture(scope="session")
def toys(tmp_path_factory: pytest.TempPathFactory) -> Toys:
    registry = tmp_path_factory.mktemp("registry")
    frame = toy_frame()
    return Toys(frame, register_toy(registry, frame, 5), register_toy(registry, frame, 25))


@dataclass(frozen=True)
class Running:
    """A live endpoint process and what the tests need to reach it."""

    proc: subprocess.Popen[bytes]
    url: str
    state_dir: Path
    client: LocalEndpointClient


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def server_env(**extra: str) -> dict[str, str]:
    return {
        "MLOPS_ENDPOINT_KEY": SCORING_KEY,
        "MLOPS_ENDPOINT_ADMIN_KEY": ADMIN_KEY,
        "MLOPS_ENDPOINT_COLLECT_FLUSH_S": "0.3",
        "MLOPS_ENDPOINT_OFFLOAD_ROWS": "500",
        "MLOPS_ENDPOINT_MAX_BODY_BYTES": str(64 * 1024 * 1024),
        **extra,
    }


def roots_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Let an endpoint load bundles from the session's temporary folders (the toy registries)."""
    return {"MLOPS_ENDPOINT_MODEL_ROOTS": json.dumps([str(tmp_path_factory.getbasetemp())])}


def running_server(tmp_path_factory: pytest.TempPathFactory, state: str) -> Iterator[Running]:
    """An endpoint server process on a free port, with a client; stopped after."""
    state_dir = tmp_path_factory.mktemp(state)
    port = free_port()
    proc = start_endpoint(state_dir, port, server_env(**roots_env(tmp_path_factory)))
    url = f"http://127.0.0.1:{port}"
    client = LocalEndpointClient(url, SCORING_KEY, ADMIN_KEY, timeout=30)
    try:
        yield Running(proc, url, state_dir, client)
    finally:
        client.close()
        stop(proc)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """One endpoint for most tests; each test puts the deployments it needs in place."""
    yield from running_server(tmp_path_factory, "endpoint-state")


@pytest.fixture
def blue_green(server: Running, toys: Toys) -> LocalEndpointClient:
    """blue serves v1 with all traffic, green serves v2 with none (reloads only what differs)."""
    client = server.client
    current = client.state()["deployments"]
    for name, version in (("blue", toys.v1), ("green", toys.v2)):
        if current.get(name, {}).get("model_url") != version.url:
            client.put_deployment(name, version.url)
    client.set_traffic({"blue": 100, "green": 0})
    return client
