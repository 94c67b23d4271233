"""Helpers for the task tests: run the stages in order, write specs and broken data, read runs."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from uuid import UUID

from prefect import get_client
from prefect.client.schemas.objects import TaskRun
from prefect.exceptions import ObjectNotFound
from prefect.states import State

from mlops.core.lineage import DataRef
from mlops.core.spec import PipelineSpec
from mlops.data.frames import FrameRef
from mlops.model.results import Evaluation, Split, TrainedModel
from mlops.registry.protocol import ModelVersion
from tasks.data import load_data, locate_data, read_spec, validate_data
from tasks.evaluation import evaluate_vs_champion
from tasks.features import build_features
from tasks.registry import register_model
from tasks.training import train_model
from tests.conftest import ROOT, write_spec  # noqa: F401 - re-exported for the task tests

CHURN_YAML = str(ROOT / "configs" / "churn.yaml")
STAGE_NAMES = (
    "read_spec",
    "locate_data",
    "load_data",
    "validate_data",
    "build_features",
    "train_model",
    "evaluate_vs_champion",
    "register_model",
)


@dataclass
class Stages:
    """What each stage returned; `done` names the stages that finished, in order."""

    done: list[str] = field(default_factory=list)
    spec: PipelineSpec | None = None
    data: DataRef | None = None
    raw: FrameRef | None = None
    clean: FrameRef | None = None
    split: Split | None = None
    trained: TrainedModel | None = None
    evaluation: Evaluation | None = None
    version: ModelVersion | None = None


def run_stages(
    spec_path: str,
    data_url: str | None,
    *,
    until: str = "register_model",
    run_dir: str | None = None,
    stages: Stages | None = None,
) -> Stages:
    """Call the training flow's stages as real task runs, in its order, up to `until`.

    An error propagates as it would in the flow; `stages.done` (pass your own `Stages` to see
    it after an error) says which stages finished before it.
    """
    s = stages if stages is not None else Stages()
    steps = [
        ("spec", lambda: read_spec(spec_path, data_url)),
        ("data", lambda: locate_data(s.spec)),
        ("raw", lambda: load_data(s.data, s.spec)),
        ("clean", lambda: validate_data(s.raw, s.data, s.spec)),
        ("split", lambda: build_features(s.clean, s.data, s.spec)),
        ("trained", lambda: train_model(s.split, s.data, s.spec)),
        (
            "evaluation",
            lambda: evaluate_vs_champion(s.trained, s.split, s.data, s.spec, str(run_dir)),
        ),
        (
            "version",
            lambda: register_model(s.trained, s.split, s.data, s.spec, s.evaluation, s.raw.rows),
        ),
    ]
    for name, (attr, call) in zip(STAGE_NAMES, steps, strict=True):
        setattr(s, attr, call())
        s.done.append(name)
        if name == until:
            break
    return s


def fresh_ref(url: str = "memory://unit-test") -> DataRef:
    """A DataRef no other call has used, so cached stages recompute for it."""
    return DataRef(url=url, files=(), total_bytes=0, fingerprint=uuid.uuid4().hex)


def task_run(state: State, timeout: float = 15.0) -> tuple[TaskRun, list[str]]:
    """The task run behind a returned state, as the API recorded it, with its state names.

    Task states reach the server as events, a moment after the call returns: poll until the
    server has the same final state.
    """
    task_run_id: UUID = state.state_details.task_run_id
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            try:
                run = client.read_task_run(task_run_id)
            except ObjectNotFound:
                run = None
            if run is not None and run.state is not None and run.state.type == state.type:
                history = [s.name for s in client.read_task_run_states(task_run_id)]
                if history and history[-1] == state.name:
                    return run, history
            if time.monotonic() > deadline:
                raise AssertionError(f"task run {task_run_id} never reached {state.name}")
            time.sleep(0.2)
