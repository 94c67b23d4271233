"""A stand-in for the Azure ML REST API, under the real azure-ai-ml SDK, at the HTTP level.

``MLClient(..., transport=workspace.transport())`` gives the SDK azure-core's own
``RequestsTransport`` on a ``requests`` session whose adapter answers here instead of opening
sockets to Azure: every line of the SDK and of azure-core (serialization, policies, retries,
long-running-operation polling, error mapping) runs as it does against Azure. Only the bytes
come from here. docs/azure-http-tests.md says what it covers.

- ``http``: the adapter, the reply and error shapes, the names answered for;
- ``workspace``: state, routing, planned failures (``fail``, ``fail_operation``,
  ``fail_provisioning``, ``before``) and long-running operations;
- ``assets``, ``endpoints``, ``jobs``: the handlers, one concern each.
"""

from tests.azureml.standin.http import (
    LOCATION,
    MFE_HOST,
    REGISTRY,
    RG,
    SUB,
    WS,
    FakeCredential,
    storage_transport,
)
from tests.azureml.standin.workspace import Workspace

__all__ = ["LOCATION", "MFE_HOST", "REGISTRY", "RG", "SUB", "WS", "FakeCredential",
           "Workspace", "storage_transport"]
