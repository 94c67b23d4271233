"""Shared fixtures: an isolated Prefect home and test server for the whole session."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


def pytest_configure(config: pytest.Config) -> None:
    # Prefect reads its settings lazily; point its home at a throw-away folder before any test
    # imports it, so results and cache records never leak between test runs.
    home = tempfile.mkdtemp(prefix="prefect-home-")
    os.environ["PREFECT_HOME"] = home
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_TO_API_BATCH_INTERVAL", "0.3")
    # Batch processes keep fast path snapshots (mlops.batch.fast_cache): one folder per run
    os.environ["MLOPS_FASTPATH_CACHE"] = tempfile.mkdtemp(prefix="mlops-fastpath-")


def _immediate_uvicorn(server: Any) -> subprocess.Popen[bytes]:
    """Prefect's `SubprocessASGIServer._run_uvicorn_command` (prefect 3.8.8), serving
    `tools.prefect_server.create_app`: write transactions that wait for SQLite's lock."""
    from prefect.settings import get_current_settings

    return subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--app-dir", str(ROOT), "--factory",
         "tools.prefect_server:create_app", "--host", "127.0.0.1", "--port", str(server.port),
         "--log-level", "error", "--lifespan", "on"],
        env={**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1",
             "PREFECT__SERVER_FINAL": "1",
             **get_current_settings().to_environment_variables(exclude_unset=True)},
    )


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[None]:
    """One temporary Prefect server (6-15 s to start) for every flow and task test: Prefect's
    test harness, its server started through tools/prefect_server.py."""
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.testing.utilities import prefect_test_harness

    with mock.patch.object(SubprocessASGIServer, "_run_uvicorn_command", _immediate_uvicorn), \
            prefect_test_harness(server_startup_timeout=120):
        yield


def write_spec(folder: Path, name: str, changes: dict[str, Any]) -> str:
    """configs/churn.yaml with dotted-path changes, written as `<folder>/<name>.yaml`."""
    spec = yaml.safe_load((ROOT / "configs" / "churn.yaml").read_text())
    for dotted, value in changes.items():
        node = spec
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node[part]
        node[leaf] = value
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return str(path)


def spec_endpoint(spec_path: str, settings: Any) -> Any:
    """The local client of the endpoint that serves the spec's model on the settings' server:
    its own endpoint (``/endpoints/<name>``), or the default one for the default model."""
    from mlops.core.spec import load_spec
    from mlops.endpoint.backend import endpoint_for

    return endpoint_for(load_spec(spec_path), settings)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def corrupt_labels(frame: Any, target: str, how: str, seed: int = 0) -> Any:
    """A copy of `frame` with its 0/1 `target` shuffled, inverted, or 30% of it flipped."""
    import numpy as np

    frame = frame.copy()
    rng = np.random.default_rng(seed)
    labels = frame[target].to_numpy()
    corrupted = {
        "shuffled": lambda: rng.permutation(labels),
        "inverted": lambda: 1 - labels,
        "flipped": lambda: np.where(rng.random(len(labels)) < 0.3, 1 - labels, labels),
    }[how]()
    frame[target] = corrupted.astype(labels.dtype)
    return frame


@pytest.fixture(scope="session")
def churn_yaml() -> Any:
    """configs/churn.yaml as shipped: the sample-data generator must match it exactly."""
    from mlops.core.spec import load_spec

    return load_spec(ROOT / "configs" / "churn.yaml")


@pytest.fixture(scope="session")
def diabetes_yaml() -> Any:
    from mlops.core.spec import load_spec

    return load_spec(ROOT / "configs" / "diabetes.yaml")
