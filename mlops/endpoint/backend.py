"""The endpoint a spec selects: our local scoring server (default) or an Azure ML managed one.

The Azure ML client imports ``azure.ai.ml`` (about 5 s), so it is imported only when a spec
selects it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from mlops.core.settings import Settings
from mlops.core.spec import PipelineSpec
from mlops.endpoint.protocol import EndpointClient


def endpoint_for(spec: PipelineSpec, settings: Settings) -> EndpointClient:
    if spec.endpoint.backend == "azureml":
        from mlops.endpoint.azureml import AzureMLEndpointClient  # noqa: PLC0415 - azure.ai.ml

        return AzureMLEndpointClient.from_spec(spec, settings)
    from mlops.endpoint.local import LocalEndpointClient  # noqa: PLC0415

    return LocalEndpointClient.from_settings(settings, local_endpoint_url(spec, settings))


def local_endpoint_url(spec: PipelineSpec, settings: Settings) -> str:
    """Where a spec's model is served locally: ``endpoint.url`` if the spec sets it; else, for
    the default model, the server's plain URL (``MLOPS_ENDPOINT_URL``, its default endpoint),
    and for any other, its own endpoint on that server, ``<URL>/endpoints/<endpoint name>``
    (``endpoint.name``, default ``<spec name>-endpoint``)."""
    if not spec.serves_at_own_local_endpoint:
        return spec.endpoint.url or settings.endpoint_url
    return f"{settings.endpoint_url.rstrip('/')}/endpoints/{spec.endpoint_name}"


@contextmanager
def endpoint_session(spec: PipelineSpec, settings: Settings) -> Iterator[EndpointClient]:
    """`endpoint_for`'s client for the length of a block, closed after it (the local client
    holds a connection pool; a task that drops it leaves its sockets to the collector)."""
    client = endpoint_for(spec, settings)
    try:
        yield client
    finally:
        client.close()
