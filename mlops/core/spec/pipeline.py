"""The pipeline spec: one YAML file per model, loaded into typed pydantic models.

A new dataset or model is a new spec file, never new code. Flow parameters override fields of
the spec through `load_spec(path, overrides)`.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from mlops.core.errors import SpecError
from mlops.core.settings import DEFAULT_MODEL
from mlops.core.spec.batch import BatchSpec
from mlops.core.spec.columns import (
    ColumnSpec,
    DataSpec,
    SplitSpec,
    _Strict,
)
from mlops.core.spec.drift import DriftSpec
from mlops.core.spec.environments import EnvironmentSpec, environment_problems
from mlops.core.spec.estimator import FeatureSpec, ModelSpec
from mlops.core.spec.evaluation import (
    CLASSIFICATION_METRICS,
    REGRESSION_METRICS,
    EvaluationSpec,
)
from mlops.core.spec.schedule import ScheduleSpec
from mlops.core.spec.targets import (
    AZURE_ENDPOINT_NAME,
    AzureMLSpec,
    EndpointSpec,
    RegistrySpec,
    TrainingSpec,
)
from mlops.core.spec.tracking import TrackingSpec
from serving.columns import normalize_name


class PipelineSpec(_Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{1,40}$")
    description: str = ""
    data: DataSpec
    target: str
    task: Literal["classification", "regression"]
    columns: list[ColumnSpec]
    min_rows: int = Field(100, ge=10)
    split: SplitSpec = Field(default_factory=SplitSpec)
    features: FeatureSpec = Field(default_factory=FeatureSpec)
    model: ModelSpec
    evaluation: EvaluationSpec
    reference_rows: int = Field(5000, ge=100, description="Rows kept with the bundle for drift.")
    registry: RegistrySpec = Field(default_factory=RegistrySpec)
    endpoint: EndpointSpec = Field(default_factory=EndpointSpec)
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    azureml: AzureMLSpec | None = Field(None, description="Workspace of the 'azureml' backends.")
    drift: DriftSpec = Field(default_factory=DriftSpec)
    batch: BatchSpec = Field(default_factory=BatchSpec)
    schedule: ScheduleSpec = Field(default_factory=ScheduleSpec)
    tracking: TrackingSpec = Field(default_factory=TrackingSpec)
    environments: list[EnvironmentSpec] = Field(
        default_factory=list, description="Where a candidate is released, in order; the last "
        "is production, on the 'endpoint' section (docs/releases.md). Empty: production only.",
    )

    @model_validator(mode="after")
    def _azure_targets(self) -> PipelineSpec:
        problems = []
        users = [f"{part}.backend" for part, backend in (
            ("registry", self.registry.backend), ("endpoint", self.endpoint.backend),
            ("training", self.training.backend)) if backend == "azureml"]
        if users and self.azureml is None:
            problems.append(
                f"{', '.join(users)} 'azureml' needs an 'azureml' section "
                "(subscription_id, resource_group, workspace)"
            )
        if (self.registry.backend == "azureml") != (self.endpoint.backend == "azureml"):
            problems.append(
                "registry.backend and endpoint.backend must both be 'azureml' or neither: a "
                "managed online endpoint serves models from Azure ML, the local endpoint loads "
                "them from a folder"
            )
        if (self.tracking.uri or "").startswith("azureml://") and self.azureml is None:
            problems.append("tracking.uri 'azureml://...' needs an 'azureml' section")
        if self.registry.azureml_registry and self.registry.backend != "azureml":
            problems.append("registry.azureml_registry needs registry.backend 'azureml'")
        if self.training.backend == "azureml" and not self.training.compute:
            problems.append("training.backend 'azureml' needs training.compute (a cluster name)")
        if self.endpoint.backend == "azureml" and not AZURE_ENDPOINT_NAME.match(self.endpoint_name):
            problems.append(
                f"endpoint name '{self.endpoint_name}' is not valid on Azure ML: 3-32 letters, "
                "digits or hyphens, starting with a letter; set endpoint.name"
            )
        elif self.serves_at_own_local_endpoint and not AZURE_ENDPOINT_NAME.match(
                self.endpoint_name):
            problems.append(
                f"endpoint name '{self.endpoint_name}' is not valid for the local server: 3-32 "
                "letters, digits or hyphens, starting with a letter; set endpoint.name (or "
                "endpoint.url)"
            )
        problems += environment_problems(self.environments, self.endpoint, self.registry,
                                         self.azureml)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @model_validator(mode="after")
    def _consistent(self) -> PipelineSpec:
        keys = [normalize_name(c.name) for c in self.columns]
        dupes = sorted({k for k in keys if keys.count(k) > 1})
        if dupes:
            raise ValueError(f"columns repeat (ignoring case and separators): {dupes}")
        if normalize_name(self.target) not in keys:
            raise ValueError(f"target '{self.target}' is not among the columns")
        if not self.feature_columns:
            raise ValueError("no feature columns: give at least one column with role 'feature'")
        wrong = {
            "classification": REGRESSION_METRICS, "regression": CLASSIFICATION_METRICS
        }[self.task]
        metrics = [self.evaluation.primary_metric, *(g.name for g in self.evaluation.guard_metrics)]
        bad = [m for m in metrics if m in wrong]
        if bad:
            raise ValueError(f"metrics {bad} do not apply to task '{self.task}'")
        if self.split.time_column and normalize_name(self.split.time_column) not in keys:
            raise ValueError(f"split.time_column '{self.split.time_column}' is not a column")
        features = {normalize_name(c.name) for c in self.feature_columns}
        named = [*self.drift.thresholds, *self.drift.methods]
        unknown = sorted({n for n in named if normalize_name(n) not in features})
        if unknown:
            raise ValueError(f"drift settings name columns that are not features: {unknown}")
        outside = [c for c in self.batch.passthrough if normalize_name(c) not in keys]
        if outside:
            raise ValueError(f"batch.passthrough names columns the spec does not: {outside}")
        return self

    @property
    def feature_columns(self) -> list[ColumnSpec]:
        return [c for c in self.columns if c.role == "feature" and c.name != self.target]

    @property
    def model_name(self) -> str:
        return self.registry.model_name or self.name

    @property
    def serves_at_own_local_endpoint(self) -> bool:
        """Whether the local server serves this model at an endpoint named `endpoint_name`
        (docs/endpoints.md): a local spec without endpoint.url, not the default model's."""
        return (self.endpoint.backend == "local" and not self.endpoint.url
                and self.name != DEFAULT_MODEL)

    @property
    def endpoint_name(self) -> str:
        """endpoint.name, else ``<name>-endpoint`` locally; on Azure ML, where endpoint names
        are unique per region across every customer, ``<name>-<digest of the workspace>``."""
        if self.endpoint.name:
            return self.endpoint.name
        if self.endpoint.backend != "azureml" or self.azureml is None:
            return f"{self.name}-endpoint"
        where = "/".join((self.azureml.subscription_id, self.azureml.resource_group,
                          self.azureml.workspace)).lower()
        digest = hashlib.sha256(where.encode()).hexdigest()[:8]
        base = self.name if self.name[0].isalpha() else f"m{self.name}"
        return f"{base[:23].rstrip('-')}-{digest}"

    @property
    def production_name(self) -> str:
        """The last environment's name ('' without environments): what release history
        entries about the spec's own endpoint say."""
        return self.environments[-1].name if self.environments else ""

    def in_environment(self, env: EnvironmentSpec) -> PipelineSpec:
        """This spec as seen by an environment before production: its endpoint (with its hold
        on the final step) and its workspace; everything else, the registry included, shared."""
        if env.endpoint is None:
            return self
        steps = env.watched_steps(env.endpoint.traffic_steps)
        return self.model_copy(update={
            "endpoint": env.endpoint.model_copy(update={"traffic_steps": steps}),
            "azureml": env.azureml or self.azureml,
        })

    def column(self, name: str) -> ColumnSpec:
        key = normalize_name(name)
        return next(c for c in self.columns if normalize_name(c.name) == key)

    def spec_hash(self) -> str:
        """Digest of everything that changes the model (not where it is trained, registered or
        served: the Azure ML environment pins the same libraries as the local one; nor how its
        drift is judged, how it scores in batch, when its deployments run, where its runs
        are tracked or which environments a release passes through)."""
        payload = self.model_dump(
            mode="json",
            exclude={"registry", "endpoint", "training", "azureml", "description", "drift",
                     "batch", "schedule", "tracking", "environments"},
        )
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def _set_path(tree: dict[str, Any], dotted: str, value: Any) -> None:
    node = tree
    *parents, leaf = dotted.split(".")
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise SpecError(f"override '{dotted}': '{part}' is not a section")
    node[leaf] = value


def load_spec(path: str | Path, overrides: dict[str, Any] | None = None) -> PipelineSpec:
    """Read a spec file, apply dotted overrides (`{"data.url": "..."}`) and validate it.

    Raises:
        SpecError: the file is missing, is not YAML, or breaks the spec's rules; the message
            names the file and every problem.
    """
    import yaml  # noqa: PLC0415 - the Azure ML training job reads specs as JSON, without PyYAML

    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError as exc:
        raise SpecError(f"spec file not found: {path}") from exc
    except yaml.YAMLError as exc:
        raise SpecError(f"spec {path} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise SpecError(f"spec {path} must be a mapping, got {type(raw).__name__}")
    for key, value in (overrides or {}).items():
        if value is not None:  # a copy: a later dotted override must not edit the caller's value
            _set_path(raw, key, copy.deepcopy(value))
    try:
        return PipelineSpec.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise SpecError(f"spec {path} is invalid: {problems}") from exc
