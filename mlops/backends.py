"""Adapters chosen by configuration: the spec names the backend, this builds it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mlops.errors import SpecError
from mlops.settings import Settings
from mlops.spec import PipelineSpec
from mlops.storage import storage_options

if TYPE_CHECKING:
    from mlops.endpoint import LocalEndpointClient
    from mlops.registry import LocalRegistry


def registry_for(spec: PipelineSpec, settings: Settings) -> LocalRegistry:
    if spec.registry.backend != "local":
        raise SpecError(
            f"registry backend '{spec.registry.backend}' is not available in this build; "
            "use 'local' (a folder or an fsspec URL)"
        )
    from mlops.registry import LocalRegistry  # noqa: PLC0415

    url = spec.registry.url or settings.registry_location
    return LocalRegistry(url, storage_options(url))


def endpoint_for(spec: PipelineSpec, settings: Settings) -> LocalEndpointClient:
    if spec.endpoint.backend != "local":
        raise SpecError(
            f"endpoint backend '{spec.endpoint.backend}' is not available in this build; "
            "use 'local'"
        )
    from mlops.endpoint import LocalEndpointClient  # noqa: PLC0415

    if spec.endpoint.url:
        settings = settings.model_copy(update={"endpoint_url": spec.endpoint.url})
    return LocalEndpointClient.from_settings(settings)
