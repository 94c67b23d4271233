"""Adapters chosen by configuration: the spec names the backend, this builds it.

The tasks talk to a registry and an endpoint only through the two protocols below; the local
backends (a folder or fsspec URL, our scoring server) and the Azure ML ones implement them.
The Azure ML modules import ``azure.ai.ml`` (about 5 s), so they are imported here only when a
spec selects them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from mlops.core.settings import Settings
from mlops.data.storage import storage_options
from mlops.spec import PipelineSpec

if TYPE_CHECKING:
    import pandas as pd

    from mlops.registry.local import ModelVersion
    from serving.bundle import Bundle


class Registry(Protocol):
    """Numbered, immutable model versions and the `champion` alias (DESIGN.md, Registry)."""

    def versions(self, name: str) -> list[int]: ...

    def get(self, name: str, version: int) -> ModelVersion: ...

    def load(self, name: str, version: int) -> Bundle: ...

    def bundle_url(self, name: str, version: int) -> str: ...

    def holdout(self, name: str, version: int) -> pd.DataFrame | None: ...

    def register(
        self, name: str, *, model_bytes: bytes, features: list[dict[str, str]],
        lineage: dict[str, Any], reference: pd.DataFrame, holdout: pd.DataFrame | None = None,
    ) -> ModelVersion: ...

    def alias(self, name: str, alias: str = ...) -> int | None: ...

    def set_alias(self, name: str, version: int, alias: str = ...) -> None: ...


class EndpointClient(Protocol):
    """Named deployments, a traffic table and scoring (DESIGN.md, Endpoint)."""

    def state(self) -> dict[str, Any]: ...

    def put_deployment(self, name: str, model_url: str) -> dict[str, Any]: ...

    def delete_deployment(self, name: str) -> dict[str, Any]: ...

    def set_traffic(self, traffic: dict[str, int]) -> dict[str, int]: ...

    def score(self, payload: Any, deployment: str | None = None) -> dict[str, Any]: ...


def registry_for(spec: PipelineSpec, settings: Settings) -> Registry:
    if spec.registry.backend == "azureml":
        from mlops.registry.azureml import AzureMLRegistry  # noqa: PLC0415 - azure.ai.ml

        return AzureMLRegistry.from_spec(spec, settings)
    from mlops.registry.local import LocalRegistry  # noqa: PLC0415

    url = spec.registry.url or settings.registry_location
    return LocalRegistry(url, storage_options(url))


def endpoint_for(spec: PipelineSpec, settings: Settings) -> EndpointClient:
    if spec.endpoint.backend == "azureml":
        from mlops.endpoint.azureml import AzureMLEndpointClient  # noqa: PLC0415 - azure.ai.ml

        return AzureMLEndpointClient.from_spec(spec, settings)
    from mlops.endpoint.local import LocalEndpointClient  # noqa: PLC0415

    if spec.endpoint.url:
        settings = settings.model_copy(update={"endpoint_url": spec.endpoint.url})
    return LocalEndpointClient.from_settings(settings)
