"""Batch fixtures: a churn champion, partitions to score, an empty snapshot cache for a fresh
process, and a real endpoint serving the champion."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from mlops.batch import fast_cache, run
from mlops.endpoint.local import LocalEndpointClient
from tests.conftest import free_port
from tests.mlops.batch._batch import Champion, make_champion, write_partitions
from tools.endpoint_process import start_endpoint


@pytest.fixture(scope="module")
def champion(tmp_path_factory: pytest.TempPathFactory) -> Champion:
    return make_champion(tmp_path_factory.mktemp("champion"))


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv(fast_cache.CACHE_VARIABLE, str(folder))
    monkeypatch.setattr(run, "_scorers", {})  # a fresh process: no scorer loaded yet
    return folder


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    folder = tmp_path_factory.mktemp("inputs") / "in"
    return folder, write_partitions(folder)


@pytest.fixture(scope="module")
def endpoint(champion: Champion, tmp_path_factory: pytest.TempPathFactory) -> Iterator[
        LocalEndpointClient]:
    """Our endpoint process, its blue deployment serving the champion with all traffic."""
    port = free_port()
    env = {"MLOPS_ENDPOINT_KEY": "k", "MLOPS_ENDPOINT_ADMIN_KEY": "a",
           "MLOPS_ENDPOINT_MAX_BODY_BYTES": str(64 * 1024 * 1024),
           "MLOPS_ENDPOINT_MODEL_ROOTS": json.dumps([champion.registry])}
    proc: subprocess.Popen[bytes] = start_endpoint(tmp_path_factory.mktemp("ep"), port, env)
    client = LocalEndpointClient(f"http://127.0.0.1:{port}", "k", "a", timeout=60)
    try:
        client.put_deployment("blue", champion.model.url)
        client.set_traffic({"blue": 100})
        yield client
    finally:
        client.close()
        proc.terminate()
        proc.wait(15)
