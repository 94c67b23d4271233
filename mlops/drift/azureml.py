"""Where Azure ML's data collector keeps an endpoint's inputs, as a URL the drift check reads.

The collector writes to the workspace's default blob datastore (``workspaceblobstore``) under
``modelDataCollector/<endpoint>/`` (deployments/azureml/deployment.yml enables it). The
datastore's account and container come from the workspace; reading needs blob read access to
that storage account (docs/azure.md). Imports azure.ai.ml: only a spec whose endpoint is on
Azure ML gets here.
"""

from __future__ import annotations

from mlops.azureml.client import azure_errors, workspace_client
from mlops.core.errors import DataLoadError
from mlops.core.spec import PipelineSpec
from mlops.drift.collected import COLLECTOR_ROOT

DATASTORE = "workspaceblobstore"


def collector_url(account: str, container: str, endpoint_suffix: str, endpoint: str) -> str:
    """The abfs:// URL of `endpoint`'s folder in the collector's storage."""
    return f"abfs://{container}@{account}.dfs.{endpoint_suffix}/{COLLECTOR_ROOT}/{endpoint}"


def collected_inputs_url(spec: PipelineSpec) -> str:
    """The spec's endpoint folder in the workspace's ``workspaceblobstore``.

    Raises:
        DataLoadError: the workspace or its datastore could not be read (with Azure's reason).
    """
    ml_client = workspace_client(spec.azureml)
    with azure_errors(DataLoadError, f"reading datastore '{DATASTORE}' of the workspace"):
        store = ml_client.datastores.get(DATASTORE)
    return collector_url(store.account_name, store.container_name, store.endpoint,
                         spec.endpoint_name)
