"""The spec's backend targets: registry, endpoint, training, and the Azure ML workspace."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, field_validator

from mlops.core.spec.columns import _Strict
from serving.config import ENDPOINT_NAME

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h)?\s*$")
_UNIT_S = {"s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def _seconds(value: object) -> object:
    """``90``, ``"90s"``, ``"5m"``, ``"1.5h"`` as seconds; anything else is left for pydantic
    to refuse."""
    if isinstance(value, str):
        found = _DURATION.match(value)
        if found is None:
            raise ValueError(f"a duration is a number of seconds or like '30s', '5m', '1h'; "
                             f"got {value[:40]!r}")
        return float(found[1]) * _UNIT_S[found[2]]
    return value


Seconds = Annotated[float, BeforeValidator(_seconds), Field(ge=0)]

# An endpoint restart (models loaded again) takes seconds; a release waits for it this long.
MIN_UNREACHABLE_WAIT_S = 60.0
UNREACHABLE_WAIT_POLLS = 12


class TrafficStep(_Strict):
    """One step of a release: the candidate's share, then how long it is held and watched."""

    share: int = Field(gt=0, le=100, description="The candidate's percentage of the traffic.")
    hold: Seconds = Field(0.0, description="How long the step is watched before the next one "
                          "(seconds, or '30s', '5m', '1h'); 0 moves on at once.")


class ShadowPhase(_Strict):
    """Mirror traffic before the first live step: the candidate answers copies of a share of
    live requests (answers discarded), watched with the same guards as a held step."""

    share: int = Field(gt=0, le=50, description="Percentage of live requests copied to the "
                       "candidate (Azure ML mirrors at most 50%).")
    hold: Seconds = Field(gt=0, description="How long the copies are watched (seconds, or "
                          "'30s', '5m', '1h').")


class CanaryGuards(_Strict):
    """What a held traffic step must show to pass (docs/releases.md)."""

    max_error_rate: float | None = Field(
        None, ge=0, le=1, description="Highest share of the candidate's answers in the 5xx class."
    )
    max_p95_latency_ratio: float | None = Field(
        None, gt=0, description="Highest ratio of the candidate's p95 latency to the old "
        "deployment's over the same step."
    )
    min_requests: int = Field(
        0, ge=0, description="Requests the candidate must answer in a step before it is judged."
    )
    on_too_few: Literal["pass", "rollback"] = Field(
        "rollback", description="What a hold that ends with fewer requests than min_requests "
        "does."
    )
    on_rollback: Literal["keep", "remove"] = Field(
        "keep", description="After a rollback, keep the candidate at 0% for inspection or "
        "remove its deployment."
    )
    poll: Seconds = Field(5.0, gt=0, description="How often a hold reads the live metrics.")
    unreachable_wait: Seconds | None = Field(
        None, description="How long a release whose endpoint stopped answering waits for it "
        "to come back and take the old traffic table, before it fails naming the state left "
        "(seconds, or '30s', '5m'); default: 12 polls, at least 60 s."
    )

    @property
    def unreachable_wait_s(self) -> float:
        if self.unreachable_wait is not None:
            return self.unreachable_wait
        return max(MIN_UNREACHABLE_WAIT_S, UNREACHABLE_WAIT_POLLS * self.poll)


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
    traffic_steps: list[TrafficStep] = Field(
        default_factory=lambda: [TrafficStep(share=100)],
        description="Shares the candidate goes through: a number, or {share: 10, hold: 5m} to "
        "watch the step before the next.",
    )
    shadow: ShadowPhase | None = Field(
        None, description="Mirror traffic to the candidate, watched, before the first live "
        "step, e.g. {share: 20, hold: 5m}; none by default.",
    )
    guards: CanaryGuards = Field(default_factory=CanaryGuards)
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
    worker_count: int | None = Field(
        None, ge=1, le=64,
        description="Backend 'azureml': inference server processes per instance (WORKER_COUNT), "
        "one per vCPU; default: deployment.yml (sized in docs/azure.md).",
    )
    max_concurrent_requests_per_instance: int | None = Field(
        None, ge=1, le=1000,
        description="Backend 'azureml': requests an instance takes at once before Azure answers "
        "429; at least worker_count; default: deployment.yml.",
    )
    request_timeout_ms: int | None = Field(
        None, ge=1000, le=180_000,
        description="Backend 'azureml': longest a request may take, queueing included; "
        "default: deployment.yml.",
    )


    @field_validator("traffic_steps", mode="before")
    @classmethod
    def _plain_shares(cls, steps: object) -> object:
        """A plain number is a step held for no time."""
        if isinstance(steps, list):
            return [{"share": s} if isinstance(s, int) and not isinstance(s, bool) else s
                    for s in steps]
        return steps


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


# Azure ML's rule for endpoint and deployment names, which the local server's endpoints follow too.
AZURE_ENDPOINT_NAME = ENDPOINT_NAME
