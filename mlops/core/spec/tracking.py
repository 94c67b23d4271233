"""The spec's tracking section: whether and where training and drift runs go in MLflow."""

from __future__ import annotations

from pydantic import Field

from mlops.core.spec.columns import _Strict


class TrackingSpec(_Strict):
    """Experiment tracking in MLflow (docs/tracking.md). It never changes what ships and never
    fails a run: a store that is down or slow costs a warning, not the run."""

    enabled: bool = Field(True, description="Record every training and drift run in MLflow.")
    uri: str | None = Field(
        None,
        description="MLflow tracking URI; default: the Azure ML workspace's when the registry is "
        "'azureml', else a SQLite store in the state folder.",
    )
    timeout_s: float = Field(
        10.0, gt=0, le=300,
        description="Longest wait for the store, per request and when the run ends; what is "
        "not recorded by then is dropped with a warning.",
    )
    max_retries: int = Field(
        0, ge=0, le=5, description="Retries of a failed HTTP request to a remote store."
    )
