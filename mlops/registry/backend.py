"""The registry a spec selects: a local folder or fsspec URL (default), or Azure ML.

The Azure ML registry imports ``azure.ai.ml`` (about 5 s), so it is imported only when a spec
selects it.
"""

from __future__ import annotations

from mlops.core.settings import Settings
from mlops.core.spec import PipelineSpec
from mlops.data.storage import storage_options
from mlops.registry.protocol import Registry


def registry_for(spec: PipelineSpec, settings: Settings) -> Registry:
    if spec.registry.backend == "azureml":
        from mlops.registry.azureml import AzureMLRegistry  # noqa: PLC0415 - azure.ai.ml

        return AzureMLRegistry.from_spec(spec, settings)
    from mlops.registry.local import LocalRegistry  # noqa: PLC0415

    url = spec.registry.url or settings.registry_location
    return LocalRegistry(url, storage_options(url))
