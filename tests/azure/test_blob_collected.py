"""The drift check on Azure: inputs Azure ML's data collector wrote to blob storage, judged.

score.py's collection (``serving.mdc``) feeds a stand-in for Azure's collector agent that writes
what the agent writes (docs: "Collect production data from models deployed for real-time
inferencing", section "Store collected data in blob storage"): one JSON event per collected
batch, rows as records under ``data``, in hour folders under
``modelDataCollector/<endpoint>/<deployment>/model_inputs/``, here on Azurite.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from mlops.data.storage import url_to_fs
from mlops.drift.collected import read_collected_window
from mlops.drift.compute import compute_drift, drift_columns
from mlops.drift.data import require_columns
from serving.collect import Record
from serving.mdc import ModelDataCollector
from tests.azure.conftest import new_container
from tests.mlops._frames import churn_spec
from tools.datasets import make_churn

pytestmark = [pytest.mark.azurite, pytest.mark.service]

NOW = datetime(2026, 3, 2, 0, 40, tzinfo=UTC)
DRIFTED = {"age": 1.0, "monthly_charges": 0.5, "region": 1.0, "contract": 0.6}
ENDPOINT = "churn-7f3a9c"


class CollectorAgent:
    """Writes each ``collect`` call as Azure ML's collector does, timed at `now`."""

    def __init__(self, root_url: str, deployment: str, name: str) -> None:
        self.fs, root = url_to_fs(root_url)
        self.folder = f"{root}/{ENDPOINT}/{deployment}/{name}"
        self.deployment, self.name, self.now = deployment, name, NOW

    def collect(self, data: pd.DataFrame, correlation_context=None):
        event = {
            "specversion": "1.0", "id": str(uuid.uuid4()),
            "source": f"/subscriptions/s/resourceGroups/rg/providers/"
                      f"Microsoft.MachineLearningServices/workspaces/ws/onlineEndpoints/"
                      f"{ENDPOINT}/deployments/{self.deployment}",
            "type": f"azureml.inference.{self.name}", "datacontenttype": "application/json",
            "time": f"{self.now:%Y-%m-%dT%H:%M:%SZ}",
            "data": json.loads(data.to_json(orient="records")),
            "correlationid": correlation_context or str(uuid.uuid4()),
            "xrequestid": str(uuid.uuid4()), "modelversion": "default",
            "collectdatatype": "pandas.core.frame.DataFrame",
            "agent": "azureml-ai-monitoring/1.0.0",
        }
        path = f"{self.folder}/{self.now:%Y/%m/%d/%H}/{uuid.uuid4()}.jsonl"
        self.fs.pipe_file(path, (json.dumps(event) + "\n").encode())
        return event["correlationid"]


def _deployment(root_url: str, name: str) -> tuple[ModelDataCollector, CollectorAgent]:
    inputs = CollectorAgent(root_url, name, "model_inputs")
    return ModelDataCollector(inputs, CollectorAgent(root_url, name, "model_outputs")), inputs


def _serve(collector: ModelDataCollector, frame: pd.DataFrame, names: list[str]) -> None:
    """What score.py queues for each request of 100 rows (numpy numbers, pandas text)."""
    for start in range(0, len(frame), 100):
        part = frame.iloc[start:start + 100]
        columns = {
            name: part[name].to_numpy() if part[name].dtype.kind in "biuf" else part[name].array
            for name in names
        }
        collector.add(Record(columns, np.zeros(len(part), dtype="int64"), "azureml", "churn",
                             "3", "", NOW))
    collector.flush()


def test_drift_check_judges_what_azure_ml_collected(blob_env):
    spec = churn_spec()
    names = [c.name for c in drift_columns(spec)]
    root = f"abfs://{new_container(blob_env, 'mdc')}/modelDataCollector"
    blue, blue_agent = _deployment(root, "blue")
    green, green_agent = _deployment(root, "green")
    drifted = make_churn(3000, seed=22, drift=DRIFTED)
    # logged ten minutes before the window, in the hour folder where it starts: left out
    blue_agent.now = NOW - timedelta(hours=24, minutes=10)
    _serve(blue, make_churn(900, seed=5, drift={"age": -3.0}), names)
    blue_agent.now = NOW - timedelta(hours=2)
    _serve(blue, drifted.iloc[:1800], names)
    green_agent.now = NOW - timedelta(minutes=10)  # the other deployment counts too
    _serve(green, drifted.iloc[1800:], names)

    current = read_collected_window(f"{root}/{ENDPOINT}", names, NOW - timedelta(hours=24), NOW)
    assert current.rows == 3000 and current.files == 3  # one event per batch of requests
    table = require_columns(current.table, names, current.source)
    reference = make_churn(3000, seed=21)
    result = compute_drift(reference, table.to_pandas(), spec)
    assert sorted(result.drifted_columns) == sorted(DRIFTED)
    undrifted = compute_drift(reference, make_churn(3000, seed=23), spec)
    assert undrifted.drifted_columns == []
    assert f"{ENDPOINT} (model_inputs, 2026-03-01 00:40 to 2026-03-02 00:40 UTC)" in current.source


def test_an_endpoint_without_collected_data_has_no_rows(blob_env):
    root = f"abfs://{new_container(blob_env, 'mdc')}/modelDataCollector/{ENDPOINT}"
    current = read_collected_window(root, ["age"], NOW - timedelta(hours=24), NOW)
    assert current.rows == 0 and current.files == 0
