"""Azurite stops in the middle of a load: the load task's retries carry the run through.

The Storage SDK gives up after a few seconds (serving.blobfs.SDK_RETRY); the task then fails,
waits (tasks._options.IO_RETRY_DELAYS) and reads everything again once Azurite is back on the
same port with the same blobs.
"""

from __future__ import annotations

import threading

import pytest
from prefect import flow

import mlops.data.loading
from mlops.core.errors import MlopsError
from tasks.data import load_data, locate_data, read_spec
from tests.conftest import write_spec
from tests.tasks._stages import task_run
from tools.datasets import write_churn

pytestmark = [
    pytest.mark.azurite, pytest.mark.service, pytest.mark.slow,
    pytest.mark.usefixtures("prefect_server"),
]


@flow(name="load-from-blob")
def _load(spec_path: str):
    spec = read_spec(spec_path)
    return load_data(locate_data(spec), spec, return_state=True)


class Outage:
    """Stops Azurite just before the second partition is read; restarts it after the failure."""

    def __init__(self, azurite, monkeypatch) -> None:
        self.azurite = azurite
        self.reads = 0
        self.failures: list[BaseException] = []
        self.failed = threading.Event()
        self.restarted = threading.Event()
        self._real = mlops.data.loading._read_parquet
        monkeypatch.setattr(mlops.data.loading, "_read_parquet", self.read)
        self._restarter = threading.Thread(target=self._restart, daemon=True)

    def read(self, f):
        self.reads += 1
        if self.reads == 2:
            self.azurite.stop()
            self._restarter.start()
        try:
            return self._real(f)
        except Exception as exc:
            self.failures.append(exc)
            self.failed.set()
            raise

    def _restart(self) -> None:
        self.failed.wait(timeout=120)
        self.azurite.start()  # same port, same folder of blobs
        self.restarted.set()


def test_retries_of_the_load_task_outlast_an_azurite_outage(
    azurite, container, tmp_path, monkeypatch
):
    monkeypatch.setenv("MLOPS_STATE_DIR", str(tmp_path / "state"))
    url = f"abfs://{container}/churn"
    write_churn(url, n_rows=900, partitions=3, seed=21)
    spec_path = write_spec(tmp_path, "blob", {"data.url": url})
    outage = Outage(azurite, monkeypatch)

    state = _load(spec_path)

    assert outage.restarted.is_set() and azurite.running
    assert state.is_completed(), state
    assert state.result().rows == 900
    assert outage.failures, "the outage never reached the read"
    assert not any(isinstance(exc, MlopsError) for exc in outage.failures)  # transient, retried
    run, history = task_run(state)
    assert run.run_count >= 2
    assert "AwaitingRetry" in history and history[-1] == "Completed"
    assert outage.reads >= 2 + 3  # two reads before the outage, all three again after it

