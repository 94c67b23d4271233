"""Finding 10: Azure ML data assets as data URLs, resolved through the real SDK (over HTTP to
the REST stand-in) to their datastore's abfs:// URL on Azurite, recorded in the lineage."""

from __future__ import annotations

import pytest
from azure.ai.ml.entities import Data
from prefect.settings import PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW, temporary_settings

from mlops.azureml.data_assets import parse_asset, resolve_data_asset
from mlops.core.errors import DataLoadError
from mlops.data.storage import url_to_fs
from tests.azureml.conftest import azure_spec
from tests.azureml.standin import WS
from tools.datasets import write_churn

pytestmark = pytest.mark.azurite


@pytest.fixture
def churn_asset(ml_client, workspace, blob_env) -> str:
    """churn_features:3, a folder of two Parquet partitions on the workspace's datastore."""
    write_churn(f"abfs://{workspace.container}/features/churn/v3", n_rows=300, partitions=2,
                seed=3)
    ml_client.data.create_or_update(Data(
        name="churn_features", version="3", type="uri_folder",
        path="azureml://datastores/workspaceblobstore/paths/features/churn/v3/"))
    return f"abfs://{workspace.container}/features/churn/v3/"


@pytest.mark.parametrize("url", [
    "azureml:churn_features:3",
    f"azureml://subscriptions/s/resourcegroups/rg/workspaces/{WS}/data/churn_features/versions/3",
    "azureml://locations/westeurope/workspaces/0000/data/churn_features/versions/3",
])
def test_an_asset_url_resolves_to_its_datastore_path(ml_client, churn_asset, url):
    resolved = resolve_data_asset(ml_client, url)
    assert (resolved.url, resolved.asset) == (churn_asset, "churn_features:3")


def test_latest_and_unknown_assets(ml_client, churn_asset):
    assert parse_asset("azureml:churn_features@latest") == ("churn_features", None, "latest")
    with pytest.raises(DataLoadError, match=r"reading data asset churn_features:9 failed "
                                            r"\(HTTP 404\)"):
        resolve_data_asset(ml_client, "azureml:churn_features:9")
    with pytest.raises(DataLoadError, match="not an Azure ML data asset"):
        parse_asset("azureml:churn features")
    with pytest.raises(DataLoadError, match="is an Azure ML data asset, not a storage URL"):
        url_to_fs("azureml:churn_features:3")  # not taken for a local path


@pytest.mark.service
def test_training_data_given_as_an_asset_is_read_and_recorded(
    ml_client, churn_asset, prefect_server, monkeypatch
):
    import mlops.azureml.client
    from mlops.azureml.entities import TAG_KEYS
    from tasks.data import load_data, locate_data

    monkeypatch.setattr(mlops.azureml.client, "workspace_client", lambda target: ml_client)
    spec = azure_spec(**{"data.url": "azureml:churn_features:3"})
    with temporary_settings({PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW: "ignore"}):
        data = locate_data(spec)
        assert (data.url, data.asset) == (churn_asset, "churn_features:3")
        assert len(data.files) == 2
        assert load_data(data, spec).rows == 300
    assert "data_asset" in TAG_KEYS  # the registered model carries it as a tag


def test_an_asset_without_a_workspace_is_a_clear_error():
    from mlops.azureml.data_assets import resolve_for_spec
    from mlops.core.spec import load_spec
    from tests.azureml.conftest import CHURN_YAML

    with pytest.raises(DataLoadError, match="needs an 'azureml' section"):
        resolve_for_spec(load_spec(CHURN_YAML), "azureml:churn_features:3")
