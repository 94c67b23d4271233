"""What the training and drift stages hand each other: plain values, no Prefect.

The tasks in ``tasks/`` return and take these; keeping them here lets a task module use another
stage's result without importing that stage.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from typing import Any, NamedTuple

from mlops.data.frames import FrameRef
from mlops.evaluation.decision import BootstrapResult, Decision, TrustedScores


class Split(NamedTuple):
    train: FrameRef
    test: FrameRef


class TrainedModel:
    """The fitted pipeline and when it was fitted (a cached re-run keeps the original time).

    Prefect keeps this result as a pickle. The pipeline inside is pickled on its own and
    unpickled only when first used: unpickling it imports scikit-learn (1-2 s), which a re-run
    that finds its champion unchanged never needs.
    """

    def __init__(self, pipeline: Any, trained_at: str, train_rows: int, fit_seconds: float,
                 job_name: str | None = None):
        self._pipeline = pipeline
        self.job_name = job_name  # the Azure ML job that fitted it, if one did
        self._pickled: bytes | None = None
        self.trained_at = trained_at
        self.train_rows = train_rows
        self.fit_seconds = fit_seconds

    @property
    def pipeline(self) -> Any:
        if self._pipeline is None:
            self._pipeline = pickle.loads(self._pickled)  # noqa: S301 - our own result store
        return self._pipeline

    def __getstate__(self) -> dict[str, Any]:
        if self._pickled is None:
            self._pickled = pickle.dumps(self._pipeline, protocol=pickle.HIGHEST_PROTOCOL)
        return {**self.__dict__, "_pipeline": None}

    def __repr__(self) -> str:
        return (f"TrainedModel(trained_at={self.trained_at!r}, train_rows={self.train_rows}, "
                f"fit_seconds={self.fit_seconds:.1f})")


@dataclass(frozen=True)
class Evaluation:
    decision: Decision
    candidate_metrics: dict[str, float]
    champion_version: int | None
    champion_metrics: dict[str, float] | None
    bootstrap: BootstrapResult | None
    plot_path: str | None
    markdown: str
    trusted: TrustedScores | None = None


@dataclass(frozen=True)
class DeployPlan:
    """Where the candidate went: its slot, and the traffic to restore if it fails."""

    target: str
    previous_traffic: dict[str, int]
    model_name: str
    version: int


@dataclass(frozen=True)
class Champion:
    """The version holding the `champion` alias, and where its bundle is."""

    model_name: str
    version: int
    url: str


@dataclass(frozen=True)
class RollbackPlan:
    """Where a rollback goes: from the champion to `version` (its bundle at `url`), through
    `warm_slot` if a deployment still serves it, and the traffic it found."""

    model_name: str
    champion: int
    version: int
    url: str
    warm_slot: str | None
    previous_traffic: dict[str, int]
