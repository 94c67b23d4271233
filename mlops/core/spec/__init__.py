"""The pipeline spec, one YAML file per model; its sections live in the modules beside this."""

from mlops.core.spec.pipeline import PipelineSpec, load_spec

__all__ = ["PipelineSpec", "load_spec"]
