"""The drift check's URL of what Azure ML's data collector wrote: the workspace datastore's
account and container, opened by the project's storage layer on that account."""

from __future__ import annotations

import pytest

from mlops.data.storage import url_to_fs
from mlops.drift.azureml import collector_url
from tests.azure.conftest import AZURE_ENV


def test_collector_url_opens_the_datastores_container_on_its_account(monkeypatch):
    for name in AZURE_ENV:
        monkeypatch.delenv(name, raising=False)
    url = collector_url("mlws1234", "azureml-blobstore-5e1f", "core.windows.net", "churn-ep")
    assert url == ("abfs://azureml-blobstore-5e1f@mlws1234.dfs.core.windows.net/"
                   "modelDataCollector/churn-ep")
    fs, path = url_to_fs(url)
    assert fs.account_name == "mlws1234"
    assert path == "azureml-blobstore-5e1f/modelDataCollector/churn-ep"


@pytest.mark.parametrize("suffix", ["core.chinacloudapi.cn", "core.usgovcloudapi.net"])
def test_collector_url_keeps_a_sovereign_clouds_suffix(suffix):
    assert f"@acct.dfs.{suffix}/" in collector_url("acct", "c", suffix, "ep")
