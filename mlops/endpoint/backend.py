"""The endpoint a spec selects: our local scoring server (default) or an Azure ML managed one.

The Azure ML client imports ``azure.ai.ml`` (about 5 s), so it is imported only when a spec
selects it.
"""

from __future__ import annotations

from mlops.core.settings import Settings
from mlops.core.spec import PipelineSpec
from mlops.endpoint.protocol import EndpointClient


def endpoint_for(spec: PipelineSpec, settings: Settings) -> EndpointClient:
    if spec.endpoint.backend == "azureml":
        from mlops.endpoint.azureml import AzureMLEndpointClient  # noqa: PLC0415 - azure.ai.ml

        return AzureMLEndpointClient.from_spec(spec, settings)
    from mlops.endpoint.local import LocalEndpointClient  # noqa: PLC0415

    if spec.endpoint.url:
        settings = settings.model_copy(update={"endpoint_url": spec.endpoint.url})
    return LocalEndpointClient.from_settings(settings)
