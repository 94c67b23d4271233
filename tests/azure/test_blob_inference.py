"""Inference data on Blob Storage: the endpoint's collector writes Parquet to an abfs:// URL.

Also that serving stays light: opening a blob URL is what imports adlfs, never importing serving.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from mlops.data.loading import read_table
from mlops.data.storage import list_data_files
from serving.collect import InferenceCollector, Record
from tests.azure.conftest import container_name
from tests.conftest import ROOT

pytestmark = [pytest.mark.azurite, pytest.mark.service]


def _record(rows: int, request_id: str, version: str = "1") -> Record:
    columns = {"age": np.arange(rows, dtype="float64"), "region": np.array(["north"] * rows)}
    return Record(columns, np.ones(rows, dtype="int64"), "blue", "churn", version, request_id,
                  datetime(2026, 3, 4, 5, 6, tzinfo=UTC))


def test_collector_writes_whole_parquet_files_to_a_new_container(blob_env):
    container = container_name("inference")
    url = f"abfs://{container}/inference"
    collector = InferenceCollector(url, "local-endpoint", flush_rows=10_000, flush_s=60)
    collector.start()
    collector.add(_record(3, "r1"))
    collector.add(_record(2, "r2", version="2"))
    collector.close()
    assert collector.stats()["written_rows"] == 5 and collector.stats()["failed_batches"] == 0

    files = list_data_files(f"{url}/local-endpoint/date=2026-03-04")
    assert len(files) == 2  # one file per model version
    assert all(f.url.startswith(f"abfs://{container}/inference/local-endpoint/") for f in files)
    frame = read_table(files).sort_values(["model_version", "age"], ignore_index=True)
    assert frame["request_id"].tolist() == ["r1", "r1", "r1", "r2", "r2"]
    assert frame["model_version"].tolist() == ["1", "1", "1", "2", "2"]
    assert frame["age"].tolist() == [0.0, 1.0, 2.0, 0.0, 1.0]
    assert (frame["scored_at"] == pd.Timestamp("2026-03-04 05:06", tz="UTC")).all()


def test_a_failed_blob_write_is_counted_not_raised(blob_env):
    # A container name Blob Storage refuses: the batch is lost and counted, serving goes on.
    collector = InferenceCollector("abfs://x/inference", "ep", flush_s=60)
    collector.add(_record(2, "r1"))
    collector.flush()
    assert collector.stats()["failed_batches"] == 1 and collector.stats()["written_rows"] == 0


def test_serving_imports_no_azure_package_until_a_blob_url_is_opened():
    code = (
        "import sys\n"
        "import serving.server, serving.bundle, serving.collect, serving.storage, serving.state\n"
        "heavy = ('adlfs', 'azure', 'prefect', 'mlops', 'evidently')\n"
        "print(sorted({m.split('.')[0] for m in sys.modules if m.startswith(heavy)}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.strip() == "[]"
