"""What the tasks need of an endpoint (DESIGN.md, Endpoint); `local` and `azureml` implement it."""

from __future__ import annotations

from typing import Any, Protocol

from mlops.endpoint.metrics import DeploymentStats


class EndpointClient(Protocol):
    """Named deployments, a traffic table and scoring (DESIGN.md, Endpoint)."""

    # How late `metrics` reports what happened (0 for live counters); a held step lasts this
    # much longer so that it is judged on numbers that cover it.
    metrics_delay_s: float

    def state(self) -> dict[str, Any]: ...

    def put_deployment(self, name: str, model_url: str) -> dict[str, Any]: ...

    def delete_deployment(self, name: str) -> dict[str, Any]: ...

    def set_traffic(self, traffic: dict[str, int]) -> dict[str, int]: ...

    def set_mirror_traffic(self, mirror: dict[str, int]) -> dict[str, int]:
        """Copy a share of live requests to one deployment without live traffic, answers
        discarded (Azure ML's mirror traffic: at most 50%); ``{}`` turns it off."""
        ...

    def score(self, payload: Any, deployment: str | None = None) -> dict[str, Any]: ...

    def metrics(self) -> dict[str, DeploymentStats]:
        """Each deployment's request counters and latency histogram as they grow, or its
        per-minute aggregates; the canary of a release works with what happened between two
        readings (`DeploymentStats.since`)."""
        ...

    def close(self) -> None:
        """Release what the client holds (connections); it is not used after."""
        ...
