"""The pipeline spec: one YAML file per model, loaded into typed pydantic models.

A new dataset or model is a new spec file, never new code. Flow parameters override fields of
the spec through `load_spec(path, overrides)`.
"""

from __future__ import annotations

import ast
import copy
import hashlib
import importlib
import importlib.machinery
import importlib.util
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mlops.core.errors import SpecError

DType = Literal["int", "float", "category", "string", "bool", "datetime"]
Role = Literal["feature", "timestamp", "id", "ignore"]

# Metrics we can compute, with the direction in which they improve.
METRIC_DIRECTIONS: dict[str, Literal["maximize", "minimize"]] = {
    "roc_auc": "maximize",
    "average_precision": "maximize",
    "accuracy": "maximize",
    "balanced_accuracy": "maximize",
    "f1": "maximize",
    "precision": "maximize",
    "recall": "maximize",
    "log_loss": "minimize",
    "brier": "minimize",
    "r2": "maximize",
    "rmse": "minimize",
    "mae": "minimize",
}
CLASSIFICATION_METRICS = {
    "roc_auc", "average_precision", "accuracy", "balanced_accuracy", "f1", "precision",
    "recall", "log_loss", "brier",
}
REGRESSION_METRICS = {"r2", "rmse", "mae"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def normalize_name(name: str) -> str:
    """Column key that ignores case and separators: 'Period ID' == 'period_id' == 'periodid'."""
    return re.sub(r"[\s_\-.]+", "", str(name)).lower()


class ColumnRules(_Strict):
    min: float | None = Field(None, description="Smallest allowed value (inclusive).")
    max: float | None = Field(None, description="Largest allowed value (inclusive).")
    allowed: list[str | int | float | bool] | None = Field(
        None, description="The only values allowed (categorical columns)."
    )
    max_null_fraction: float = Field(
        0.0, ge=0.0, le=1.0, description="Largest share of missing values allowed."
    )
    allow_nonfinite: bool | None = Field(
        None,
        description="Whether +inf and -inf may appear (float columns); default: "
        "data.allow_nonfinite.",
    )


class ColumnSpec(_Strict):
    name: str
    dtype: DType
    role: Role = "feature"
    rules: ColumnRules = Field(default_factory=ColumnRules)


class DataSpec(_Strict):
    url: str = Field(description="fsspec URL: a file, a folder of partitions or a glob.")
    format: Literal["parquet", "csv", "auto"] = "auto"
    extra_columns: Literal["error", "drop"] = Field(
        "error", description="Columns the spec does not name: fail (default) or drop them."
    )
    separator: str = Field(
        ",", min_length=1, max_length=1,
        description="Field separator of CSV files (one character, e.g. ';' or a tab).",
    )
    allow_nonfinite: bool = Field(
        False, description="Whether float columns may hold +inf and -inf (per column: "
        "rules.allow_nonfinite).",
    )
    missing_target: Literal["error", "drop"] = Field(
        "error", description="Rows whose target is missing: fail (default) or drop them; the "
        "bundle's lineage counts them (source_rows minus clean_rows).",
    )


class SplitSpec(_Strict):
    method: Literal["random", "time"] = "random"
    test_size: float = Field(0.2, gt=0.0, lt=1.0)
    time_column: str | None = Field(None, description="Timestamp column for a time split.")
    seed: int = 42

    @model_validator(mode="after")
    def _time_needs_column(self) -> SplitSpec:
        if self.method == "time" and not self.time_column:
            raise ValueError("split.method 'time' needs split.time_column")
        return self


class NumericFeatures(_Strict):
    impute: Literal["mean", "median", "most_frequent", "constant"] = "median"
    scale: Literal["standard", "minmax", "robust", "none"] = "standard"


class CategoricalFeatures(_Strict):
    impute: Literal["most_frequent", "constant"] = "constant"
    encode: Literal["onehot", "ordinal"] = "onehot"
    max_categories: int | None = Field(30, ge=2)
    min_frequency: float | int | None = None


class FeatureSpec(_Strict):
    numeric: NumericFeatures = Field(default_factory=NumericFeatures)
    categorical: CategoricalFeatures = Field(default_factory=CategoricalFeatures)


class ModelSpec(_Strict):
    estimator: str = Field(description="Import path of a scikit-learn compatible estimator.")
    params: dict[str, Any] = Field(default_factory=dict)

    def estimator_class(self) -> type:
        module_name, _, class_name = self.estimator.rpartition(".")
        try:
            cls = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError, ValueError) as exc:
            raise SpecError(f"model.estimator: cannot import '{self.estimator}': {exc}") from exc
        if not (hasattr(cls, "fit") and hasattr(cls, "predict")):
            raise SpecError(f"model.estimator: '{self.estimator}' has no fit/predict")
        return cls

    def check_estimator_path(self) -> None:
        """Fail now if the estimator's import path cannot exist, without importing it.

        Importing scikit-learn takes 1-2 s, which a run that finds every stage cached should
        not pay just to check the spec. The module is looked up on the import path (its parents
        are not imported) and, when it is plain Python, its source is searched for the name.
        Whatever this cannot decide is left to `estimator_class`, the full import.

        Raises:
            SpecError: no such module, or a module whose source surely binds no such name.
        """
        module_name, _, class_name = self.estimator.rpartition(".")
        problem = "no module path" if not module_name else None
        if module_name and (module := _find_module(module_name)) is None:
            problem = f"No module named '{module_name}'"
        elif module_name and _binds(module, class_name) is False:
            problem = f"module '{module_name}' has no attribute '{class_name}'"
        if problem:
            raise SpecError(f"model.estimator: cannot import '{self.estimator}': {problem}")


def _find_module(name: str) -> importlib.machinery.ModuleSpec | None:
    """Where a module would be imported from, without importing it or its parent packages."""
    if name in sys.modules:
        return getattr(sys.modules[name], "__spec__", None) or importlib.util.find_spec(name)
    top, *parts = name.split(".")
    try:
        found = importlib.util.find_spec(top)
        for i, _ in enumerate(parts, start=1):
            if found is None or found.submodule_search_locations is None:
                return None
            found = importlib.machinery.PathFinder.find_spec(
                ".".join([top, *parts[:i]]), list(found.submodule_search_locations)
            )
    except (ImportError, ValueError):
        return None
    return found


def _binds(module: importlib.machinery.ModuleSpec, name: str) -> bool | None:
    """Whether the module's source binds `name` at its top level; None when the source cannot
    tell (no Python source, a star import, a module-level `__getattr__`)."""
    if not (module.origin or "").endswith(".py"):
        return None
    try:
        tree = ast.parse(Path(module.origin).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return None
    bound: set[str] = set()
    for node in _top_level(tree.body):
        if isinstance(node, ast.ImportFrom | ast.Import):
            if any(alias.name == "*" for alias in node.names):
                return None
            bound.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            bound.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            bound.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
    return None if "__getattr__" in bound else name in bound


def _top_level(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Statements that run when the module is imported, including inside if/try/with blocks."""
    for node in body:
        yield node
        if isinstance(node, ast.If | ast.Try | ast.TryStar | ast.With | ast.For | ast.While):
            for block in ("body", "orelse", "finalbody"):
                yield from _top_level(getattr(node, block, []))
            for handler in getattr(node, "handlers", []):
                yield from _top_level(handler.body)


class GuardMetric(_Strict):
    name: str
    tolerance: float = Field(0.0, ge=0.0, description="How much worse than the champion is ok.")


class BootstrapSpec(_Strict):
    samples: int = Field(500, ge=50, le=20_000)
    confidence: float = Field(0.95, gt=0.5, lt=1.0)
    require_lower_bound: bool = Field(
        False, description="The CI's lower bound of the improvement must clear the margin."
    )
    max_rows: int = Field(
        50_000, ge=100,
        description="Holdout rows the bootstrap resamples (a seeded subsample of larger ones);"
        " a smaller set gives a wider, so more cautious, interval.",
    )


class EvaluationSpec(_Strict):
    primary_metric: str
    direction: Literal["maximize", "minimize"] | None = None
    promotion_margin: float = Field(0.0, ge=0.0)
    minimum: float | None = Field(
        None, description="Primary metric every candidate must reach on the new holdout, the "
        "first model and every later one alike.",
    )
    guard_metrics: list[GuardMetric] = Field(default_factory=list)
    bootstrap: BootstrapSpec = Field(default_factory=BootstrapSpec)
    trusted_tolerance: float = Field(
        0.01, ge=0.0,
        description="How much worse than the champion (in the primary metric's units) the "
        "candidate may score on the champion's trusted holdout, the rows the champion was "
        "judged on when it was promoted.",
    )
    holdout_rows: int = Field(
        50_000, ge=100,
        description="Holdout rows stored with a version as its trusted holdout (a seeded "
        "sample of larger holdouts).",
    )
    label_drift_threshold: float | None = Field(
        None, gt=0.0,
        description="Threshold of the label-drift check instead of its method's default "
        "(distances: drift at or above it; p-value tests: drift below it).",
    )

    @model_validator(mode="after")
    def _known_metrics(self) -> EvaluationSpec:
        names = [self.primary_metric, *(g.name for g in self.guard_metrics)]
        unknown = [n for n in names if n not in METRIC_DIRECTIONS]
        if unknown:
            raise ValueError(f"unknown metrics {unknown}; known: {sorted(METRIC_DIRECTIONS)}")
        if self.direction is None:
            self.direction = METRIC_DIRECTIONS[self.primary_metric]
        return self


class RegistrySpec(_Strict):
    backend: Literal["local", "azureml"] = "local"
    url: str | None = Field(None, description="Local registry URL; default: state folder.")
    model_name: str | None = Field(None, description="Default: the spec's name.")
    azureml_registry: str | None = Field(
        None,
        description="Backend 'azureml': an Azure ML registry (shared by workspaces) to keep the "
        "models in; default: the workspace's own models.",
    )


class EndpointSpec(_Strict):
    backend: Literal["local", "azureml"] = "local"
    url: str | None = Field(None, description="Local endpoint URL; default from settings.")
    name: str | None = Field(None, description="Endpoint name; default: '<spec name>-endpoint'.")
    traffic_steps: list[Annotated[int, Field(gt=0, le=100)]] = Field(
        default_factory=lambda: [100], description="Traffic shares the candidate goes through."
    )
    smoke_rows: int = Field(20, ge=1, le=1000)
    instance_type: str | None = Field(
        None, description="Backend 'azureml': VM size; default: deployments/azureml/deployment.yml."
    )
    instance_count: int | None = Field(
        None, ge=1, description="Backend 'azureml': instances; default: deployment.yml."
    )
    deploy_timeout_minutes: int = Field(
        90, ge=1, description="Backend 'azureml': longest wait for a deployment to provision."
    )


class TrainingSpec(_Strict):
    backend: Literal["local", "azureml"] = Field(
        "local", description="Fit here, or as an Azure ML command job on a compute cluster."
    )
    compute: str | None = Field(None, description="Backend 'azureml': the compute cluster's name.")
    timeout_minutes: int = Field(
        120, ge=1, description="Backend 'azureml': longest wait for the job to finish."
    )


class AzureMLSpec(_Strict):
    """The Azure ML workspace of the 'azureml' backends. Never secrets: the credential comes from
    the environment (DefaultAzureCredential: az login, managed or workload identity)."""

    subscription_id: str
    resource_group: str
    workspace: str
    environment: str | None = Field(
        None,
        description="Environment of the endpoint and training jobs: a YAML file, or an existing "
        "'azureml:name:version'; default deployments/azureml/environment.yml.",
    )


# Azure ML's rule for endpoint and deployment names.
AZURE_ENDPOINT_NAME = re.compile(r"^[a-zA-Z][a-zA-Z0-9-]{1,30}[a-zA-Z0-9]$")


class DriftSpec(_Strict):
    """How the drift check judges the champion's reference sample against recent data.

    Per column, Evidently's default method is used (chosen by column type, reference size and
    number of distinct values) with its default threshold, unless overridden here.
    """

    drift_share: float = Field(
        0.5, gt=0.0, le=1.0,
        description="Dataset drift (and retraining) when at least this share of the checked "
        "columns drift; 0.5 is Evidently's DataDriftPreset default.",
    )
    thresholds: dict[str, float] = Field(
        default_factory=dict,
        description="Column -> drift threshold instead of the method's default (distances: "
        "drift at or above it; p-value tests: drift below it).",
    )
    methods: dict[str, str] = Field(
        default_factory=dict,
        description="Column -> Evidently stattest name (e.g. psi, ks, jensenshannon) instead "
        "of Evidently's default choice.",
    )
    min_current_rows: int = Field(
        1000, ge=1,
        description="Fewer current rows than this: no verdict, no retraining (small samples "
        "make distances noisy: the Wasserstein distance of 100 undrifted rows is often near 0.1).",
    )
    window_hours: int = Field(
        24, ge=1, le=24 * 90, description="Current window: the last N hours of inference data."
    )
    report_rows: int = Field(
        10_000, ge=1000,
        description="Most rows per side in Evidently's HTML report (a seeded sample); the "
        "verdicts are always computed on every row.",
    )

    @model_validator(mode="after")
    def _thresholds_positive(self) -> DriftSpec:
        bad = {k: v for k, v in self.thresholds.items() if not v > 0}
        if bad:
            raise ValueError(f"drift.thresholds must be > 0, got {bad}")
        return self


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
        if self.registry.azureml_registry and self.registry.backend != "azureml":
            problems.append("registry.azureml_registry needs registry.backend 'azureml'")
        if self.training.backend == "azureml" and not self.training.compute:
            problems.append("training.backend 'azureml' needs training.compute (a cluster name)")
        if self.endpoint.backend == "azureml" and not AZURE_ENDPOINT_NAME.match(self.endpoint_name):
            problems.append(
                f"endpoint name '{self.endpoint_name}' is not valid on Azure ML: 3-32 letters, "
                "digits or hyphens, starting with a letter; set endpoint.name"
            )
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
        return self

    @property
    def feature_columns(self) -> list[ColumnSpec]:
        return [c for c in self.columns if c.role == "feature" and c.name != self.target]

    @property
    def model_name(self) -> str:
        return self.registry.model_name or self.name

    @property
    def endpoint_name(self) -> str:
        return self.endpoint.name or f"{self.name}-endpoint"

    def column(self, name: str) -> ColumnSpec:
        key = normalize_name(name)
        return next(c for c in self.columns if normalize_name(c.name) == key)

    def spec_hash(self) -> str:
        """Digest of everything that changes the model (not where it is trained, registered or
        served: the Azure ML environment pins the same libraries as the local one; nor how its
        drift is judged)."""
        payload = self.model_dump(
            mode="json",
            exclude={"registry", "endpoint", "training", "azureml", "description", "drift"},
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
