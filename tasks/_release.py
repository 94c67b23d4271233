"""What a person sees of a release in Prefect: log lines, a progress artifact and the flow
run's state message while a step is held (which step, how long is left, the live numbers), and
after every release its entry in the model's history and a status artifact."""

from __future__ import annotations

from prefect import get_client, get_run_logger
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    update_progress_artifact,
)
from prefect.runtime import flow_run
from prefect.states import Running

from mlops.core.settings import get_settings
from mlops.core.spec import PipelineSpec
from mlops.registry.backend import registry_for
from mlops.registry.releases import Kind, Release
from mlops.release.canary import Reading, Verdict
from mlops.release.status import endpoint_view, status_markdown


def set_state_message(message: str) -> None:
    """Put `message` on the running flow run's state (shown beside the run in the UI)."""
    if not flow_run.id:
        return  # a task called outside a flow: there is no run to annotate
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(flow_run.id, Running(message=message[:500]), force=True)


def artifact_key(prefix: str, model: str) -> str:
    """Prefect artifact keys hold lowercase letters, digits and dashes only."""
    return f"{prefix}-{model}".lower().replace("_", "-")


def record_release(
    spec: PipelineSpec, kind: Kind, version: int | None, *, champion_before: int | None,
    champion_after: int | None, traffic_before: dict[str, int],
    traffic_after: dict[str, int], reason: str | None, detail: str = "", environment: str = "",
) -> Release:
    """Append the entry to the model's release history, log it, and publish the status (of
    the endpoint `spec` names: an environment's, for an entry about it)."""
    release = Release(
        kind, spec.model_name, version, champion_before, champion_after, dict(traffic_before),
        dict(traffic_after), reason or "not given", str(flow_run.id) if flow_run.id else None,
        detail, environment=environment,
    )
    registry = registry_for(spec, get_settings())
    registry.append_release(release)
    get_run_logger().info(
        "Release history of %s: %s of v%s%s (champion %s -> %s, traffic %s -> %s): %s",
        release.model, kind, version, f" in {environment}" if environment else "",
        champion_before, champion_after, traffic_before,
        traffic_after, release.reason,
    )
    create_markdown_artifact(
        status_markdown(spec.model_name, registry.alias(spec.model_name),
                        endpoint_view(spec, get_settings()), registry.releases(spec.model_name)),
        key=artifact_key("releases", spec.model_name), description=f"{kind} of v{version}",
    )
    return release


class HoldProgress:
    """The release's progress artifact (one per release), updated at every reading; a shadow
    phase counts as one more step, before the first (its readings are step 0)."""

    def __init__(self, model: str, version: int, steps: int, shadow: bool = False) -> None:
        self.steps = steps + shadow
        self.shadow = shadow
        self.key = artifact_key("release", f"{model}-v{version}")
        phase = " after a shadow phase" if shadow else ""
        self._id = create_progress_artifact(
            0.0, key=self.key, description=f"Releasing {model} v{version}: {steps} steps{phase}"
        )
        self._last_step: int | None = None

    def __call__(self, reading: Reading, verdict: Verdict) -> None:
        held = 1 - reading.left_s / reading.hold_s if reading.hold_s else 1
        done = reading.step - 1 + self.shadow + held
        line = f"{reading.where()}: {reading.numbers()} ({verdict})"
        update_progress_artifact(self._id, 100.0 * done / self.steps, description=line)
        get_run_logger().info("Canary %s", line)
        if reading.step != self._last_step:
            self._last_step = reading.step
            set_state_message(f"Holding {reading.where()}")
