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


@pytest.mark.azurite
def test_the_drift_check_finds_the_collector_folder_through_the_workspace(use_workspace):
    """The datastore's account and container come from the workspace (the SDK's datastore read,
    answered by the HTTP stand-in); the folder is the spec's endpoint, as deployed."""
    from mlops.drift.azureml import collected_inputs_url
    from tests.azureml.conftest import azure_spec

    spec = azure_spec(**{"endpoint.name": None})
    url = collected_inputs_url(spec)
    assert url == (f"abfs://{use_workspace.container}@devstoreaccount1.dfs.core.windows.net/"
                   f"modelDataCollector/{spec.endpoint_name}")
    assert spec.endpoint_name.startswith("churn-") and spec.endpoint_name != "churn-endpoint"
