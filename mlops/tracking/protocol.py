"""What the recorder needs of an MLflow store, and where a store is (local SQLite or Azure ML)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

# How the champion shows in MLflow's registry: a registered model of the model's name whose
# alias CHAMPION points at the MLflow version tagged VERSION_TAG with our version (docs/tracking.md)
CHAMPION = "champion"
VERSION_TAG = "mlops.version"
MIRROR_DESCRIPTION = "Mirror of the mlops registry: `champion` serves."


@dataclass(frozen=True)
class TrackingTarget:
    """Where runs go.

    Attributes:
        uri: MLflow tracking URI, also its model registry URI.
        artifact_location: Artifact root of the experiments created here; None: the store's.
        token: Bearer token provider for a remote store (Azure ML); None: no auth header.
        artifacts: Whether the store takes artifacts through MLflow's own artifact
            repositories (not so for Azure ML without its plugin: docs/tracking.md).
        mirror_champion: Whether the champion is mirrored as a registered model with a
            `champion` alias (not on Azure ML, whose own registry holds the champion).
    """

    uri: str
    artifact_location: str | None = None
    token: Callable[[], str] | None = None
    artifacts: bool = True
    mirror_champion: bool = True


class Store(Protocol):
    """The MLflow calls a run record is made of (`mlops.tracking.store.MlflowStore`)."""

    def start_run(self, experiment: str, name: str, tags: dict[str, str]) -> str: ...

    def log(
        self, run_id: str, *, params: dict[str, str] | None = None,
        metrics: dict[str, float] | None = None, tags: dict[str, str] | None = None,
    ) -> None: ...

    def log_files(self, run_id: str, files: list[tuple[str, str]]) -> None: ...

    def end_run(self, run_id: str, status: str) -> None: ...

    def set_champion(self, model_name: str, version: int, source: str,
                     run_id: str | None) -> None: ...

    def close(self) -> None:
        """Release what the store holds once its run's records are in (the recorder process:
        its input ends, and it with it)."""
