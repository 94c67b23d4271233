"""Retraining stage: start the training deployment, never while one for the model is pending,
nor within the model's drift cooldown after the last drift-triggered run.

A training run "for the model" is any run of the training flow, from any deployment (nightly,
manual, new data), whose ``spec_path`` names a spec with the same model name. It counts while
it can still train: scheduled and due (future runs of a schedule do not count, or a nightly
schedule would block every retraining), pending, running or paused. A run whose spec cannot be
read is not counted: it will fail at its first stage without training anything.

Drift-triggered runs carry the tag ``drift-retraining``. One whose expected start lies within
the spec's ``drift.cooldown_hours`` blocks the next drift-triggered run whatever its end
(completed, failed: a lasting drift would otherwise retrain, or fail, every hour), except when
it was cancelled: a person stopped it, it did not answer the drift.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from prefect import get_client, get_run_logger, task
from prefect.client.schemas.filters import (
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterExpectedStartTime,
    FlowRunFilterState,
    FlowRunFilterStateType,
    FlowRunFilterTags,
)
from prefect.client.schemas.objects import FlowRun, StateType
from prefect.deployments import run_deployment
from prefect.exceptions import ObjectNotFound
from prefect.runtime import flow_run

from mlops.core.errors import DeploymentError, SpecError
from mlops.core.spec import PipelineSpec, load_spec
from tasks._options import IO_TASK

# Cancelling runs are left out: they are on their way to Cancelled and will not train.
ACTIVE_STATES = [StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING, StateType.PAUSED]
# A scheduled run this close to its start counts as queued (clock skew between client and API).
DUE_MARGIN = timedelta(minutes=1)
PAGE = 200
DRIFT_TAG = "drift-retraining"


@dataclass(frozen=True)
class ActiveRun:
    id: str
    name: str
    state: str
    spec_path: str | None
    expected_start: datetime | None = None


def flow_name_of(deployment: str) -> str:
    """'training/training-manual' -> 'training'.

    Raises:
        DeploymentError: the name is not '<flow name>/<deployment name>'.
    """
    flow_name, sep, name = deployment.partition("/")
    if not (sep and flow_name and name):
        raise DeploymentError(
            f"training deployment '{deployment}' must be '<flow name>/<deployment name>'"
        )
    return flow_name


def _pending_runs(flow_name: str) -> list[FlowRun]:
    return _runs(flow_name, FlowRunFilter(
        state=FlowRunFilterState(type=FlowRunFilterStateType(any_=ACTIVE_STATES)),
        expected_start_time=FlowRunFilterExpectedStartTime(
            before_=datetime.now(UTC) + DUE_MARGIN),
    ))


def _runs(flow_name: str, flow_run_filter: FlowRunFilter) -> list[FlowRun]:
    runs: list[FlowRun] = []
    with get_client(sync_client=True) as client:
        while True:
            page = client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=[flow_name])),
                flow_run_filter=flow_run_filter, limit=PAGE, offset=len(runs),
            )
            runs.extend(page)
            if len(page) < PAGE:
                return runs


def _model_of(spec_path: str, cache: dict[str, str | None]) -> str | None:
    if spec_path not in cache:
        try:
            cache[spec_path] = load_spec(spec_path).model_name
        except SpecError:
            cache[spec_path] = None
    return cache[spec_path]


@task(**IO_TASK)
def find_active_training(spec: PipelineSpec, training_deployment: str) -> list[ActiveRun]:
    """Training runs of this model that are due, pending, running or paused, from any
    deployment. A run without a ``spec_path`` parameter counts too: we cannot tell its model."""
    logger = get_run_logger()
    models: dict[str, str | None] = {}
    active = []
    for run in _pending_runs(flow_name_of(training_deployment)):
        spec_path = run.parameters.get("spec_path")
        if spec_path is not None and _model_of(str(spec_path), models) != spec.model_name:
            continue
        state = run.state.name if run.state else "unknown"
        active.append(ActiveRun(str(run.id), run.name, state, spec_path))
    unreadable = sorted(path for path, model in models.items() if model is None)
    if unreadable:
        logger.warning("Ignored pending training runs whose spec cannot be read: %s", unreadable)
    return active


@task(**IO_TASK)
def find_drift_cooldown(spec: PipelineSpec, training_deployment: str) -> ActiveRun | None:
    """The latest drift-triggered training run of this model (not cancelled) expected to start
    within the spec's drift.cooldown_hours, or None (also when the cooldown is 0)."""
    hours = spec.drift.cooldown_hours
    if hours <= 0:
        return None
    runs = _runs(flow_name_of(training_deployment), FlowRunFilter(
        tags=FlowRunFilterTags(all_=[DRIFT_TAG]),
        state=FlowRunFilterState(type=FlowRunFilterStateType(
            not_any_=[StateType.CANCELLED, StateType.CANCELLING])),
        expected_start_time=FlowRunFilterExpectedStartTime(
            after_=datetime.now(UTC) - timedelta(hours=hours)),
    ))
    models: dict[str, str | None] = {}
    mine = [r for r in runs if _model_of(str(r.parameters.get("spec_path")), models)
            == spec.model_name]
    if not mine:
        return None
    last = max(mine, key=lambda r: r.expected_start_time or datetime.min.replace(tzinfo=UTC))
    return ActiveRun(str(last.id), last.name, last.state.name if last.state else "unknown",
                     last.parameters.get("spec_path"), last.expected_start_time)


@task(**IO_TASK)
def start_training(spec_path: str, reason: str, report_url: str | None, deployment: str) -> str:
    """Create a run of the training deployment and return its id without waiting for it.

    The idempotency key is this drift-check run's id, so a retry of this task (or of the flow
    run) gets the run already created instead of a second one.
    """
    try:
        run = run_deployment(
            name=deployment,
            parameters={"spec_path": spec_path, "reason": reason, "report_url": report_url},
            timeout=0,
            tags=[DRIFT_TAG],
            idempotency_key=f"drift-check-{flow_run.id}" if flow_run.id else None,
        )
    except ObjectNotFound as exc:
        raise DeploymentError(
            f"training deployment '{deployment}' does not exist on the Prefect server; deploy "
            "it (prefect deploy) or pass another training_deployment"
        ) from exc
    get_run_logger().info("Started %s: flow run %s (%s)", deployment, run.name, run.id)
    return str(run.id)
