"""A fresh local endpoint with blue serving v1 of the toy model, for the release tests, and a
thread of live requests through its traffic table."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import pytest

from mlops.core.spec import load_spec
from mlops.endpoint.local import LocalEndpointClient
from mlops.endpoint.payloads import frame_to_request
from mlops.registry.local import LocalRegistry
from tasks.deploy import deploy_model
from tests.conftest import free_port, write_spec
from tests.serving._models import FEATURES, register_pipeline, toy_frame, toy_pipeline
from tests.serving.conftest import ADMIN_KEY, SCORING_KEY, server_env, stop
from tools.endpoint_process import start_endpoint

FRAME = toy_frame()


@dataclass
class EndpointProcess:
    """The endpoint's process, to kill and start again on the same state folder and port."""

    state_dir: Path
    port: int
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = start_endpoint(self.state_dir, self.port, self.env)

    def kill(self) -> None:
        """SIGKILL: no shutdown, as a crash or an OOM kill."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)


@dataclass
class Release:
    client: LocalEndpointClient
    registry: LocalRegistry
    registry_dir: Path
    url: str
    spec_dir: Path
    endpoint: EndpointProcess


@contextmanager
def running_release(
    tmp_path: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Release]:
    """A fresh endpoint (collection off: the faulty model's answers cannot be stored either)
    with blue serving v1 of the toy model at 100%, v1 the champion."""
    registry_dir = state_dir / "registry"
    port = free_port()
    env = server_env(MLOPS_ENDPOINT_COLLECT="false",
                     MLOPS_ENDPOINT_MODEL_ROOTS=json.dumps([str(tmp_path)]))
    endpoint = EndpointProcess(tmp_path / "endpoint-state", port, env)
    endpoint.start()
    url = f"http://127.0.0.1:{port}"
    for name, value in (("URL", url), ("KEY", SCORING_KEY), ("ADMIN_KEY", ADMIN_KEY)):
        monkeypatch.setenv(f"MLOPS_ENDPOINT_{name}", value)
    client = LocalEndpointClient(url, SCORING_KEY, ADMIN_KEY, timeout=60)
    try:
        first = register_pipeline(registry_dir, FRAME, toy_pipeline(FRAME, 5))
        client.put_deployment("blue", first.url)
        client.set_traffic({"blue": 100})
        registry = LocalRegistry(str(registry_dir))
        registry.set_alias("toy", first.version)
        yield Release(client, registry, registry_dir, url, tmp_path, endpoint)
    finally:
        client.close()
        endpoint.stop()


def spec_for(release: Release, steps: list, shadow: dict | None = None, **guards: object):
    """The toy model's spec with these traffic steps, guards (polled every 0.3 s) and, if
    given, a shadow phase."""
    path = write_spec(release.spec_dir, "toy", {
        "registry": {"backend": "local", "model_name": "toy"},
        "endpoint": {"backend": "local", "traffic_steps": steps, "shadow": shadow,
                     "guards": {"poll": 0.3, **guards}},
    })
    return load_spec(path)


def _load(url: str, stop_event: threading.Event, statuses: list[int]) -> None:
    """Three-row requests through the traffic table, rows moving along the toy frame."""
    headers = {"Authorization": f"Bearer {SCORING_KEY}", "content-type": "application/json"}
    bodies = [orjson.dumps(frame_to_request(FRAME[FEATURES].iloc[i:i + 3]))
              for i in range(0, 90, 3)]
    with httpx.Client(base_url=url, timeout=30) as http:
        i = 0
        while not stop_event.is_set():
            statuses.append(http.post("/score", content=bodies[i % len(bodies)],
                                      headers=headers).status_code)
            i += 1


def under_load(release: Release, action: Callable[[], object],
               statuses: list[int] | None = None) -> tuple[object, list[int]]:
    """`action`'s result while a thread sends requests, and their statuses (also into
    `statuses`, which keeps them when `action` raises)."""
    statuses = [] if statuses is None else statuses
    stop_event = threading.Event()
    thread = threading.Thread(target=_load, args=(release.url, stop_event, statuses))
    thread.start()
    try:
        return action(), statuses
    finally:
        stop_event.set()
        thread.join(60)


def candidate(release: Release, pipeline, spec, **lineage: object):
    """Register `pipeline` and deploy it to the idle slot, as the training flow does."""
    version = register_pipeline(release.registry_dir, FRAME, pipeline, **lineage)
    plan = deploy_model(version, spec)
    return version, plan


