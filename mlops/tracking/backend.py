"""The tracking store a spec selects: its `tracking.uri`, the Azure ML workspace when the
registry is there, or the SQLite store in the state folder."""

from __future__ import annotations

from mlops.core.settings import Settings
from mlops.core.spec import PipelineSpec
from mlops.tracking.local import local_target
from mlops.tracking.protocol import TrackingTarget


def tracking_target(spec: PipelineSpec, settings: Settings) -> TrackingTarget:
    """Where the spec's runs go. Building the Azure ML target asks Azure for the workspace's
    URI, so the recorder calls this on its background thread."""
    uri = spec.tracking.uri
    if uri and not uri.startswith("azureml://"):
        return TrackingTarget(uri=uri)
    if spec.azureml is not None and (uri or spec.registry.backend == "azureml"):
        from mlops.tracking.azureml import azureml_target  # noqa: PLC0415 - azure.ai.ml

        return azureml_target(spec.azureml, uri)
    return local_target(settings.state_dir)
