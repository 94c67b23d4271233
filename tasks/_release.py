"""What a person sees of a held release in Prefect: log lines, a progress artifact, and the
flow run's state message (which step, how long is left, the live numbers)."""

from __future__ import annotations

from prefect import get_client, get_run_logger
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.runtime import flow_run
from prefect.states import Running

from mlops.endpoint.canary import Reading, Verdict


def set_state_message(message: str) -> None:
    """Put `message` on the running flow run's state (shown beside the run in the UI)."""
    if not flow_run.id:
        return  # a task called outside a flow: there is no run to annotate
    with get_client(sync_client=True) as client:
        client.set_flow_run_state(flow_run.id, Running(message=message[:500]), force=True)


class HoldProgress:
    """The release's progress artifact (one per release), updated at every reading."""

    def __init__(self, model: str, version: int, steps: int) -> None:
        self.steps = steps
        self.key = f"release-{model}-v{version}".lower().replace("_", "-")
        self._id = create_progress_artifact(
            0.0, key=self.key, description=f"Releasing {model} v{version}: {steps} steps"
        )
        self._last_step = 0

    def __call__(self, reading: Reading, verdict: Verdict) -> None:
        done = (reading.step - 1 + (1 - reading.left_s / reading.hold_s if reading.hold_s else 1))
        line = f"{reading.where()}: {reading.numbers()} ({verdict})"
        update_progress_artifact(self._id, 100.0 * done / self.steps, description=line)
        get_run_logger().info("Canary %s", line)
        if reading.step != self._last_step:
            self._last_step = reading.step
            set_state_message(f"Holding {reading.where()}")
