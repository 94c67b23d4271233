"""Model events that people are told about: a rejected candidate, a drift-triggered retraining.

Each is a Prefect event about the model (resource ``mlops.model.<name>``, label
``mlops.model``) related to the run that emits it, so an automation (automations/) can say
which model, what happened and link the run. Posted synchronously, like the data watcher's
events: the run knows the server has it.
"""

from __future__ import annotations

from typing import Any

from prefect import get_client, get_run_logger, task
from prefect.events import Event
from prefect.runtime import flow_run

from tasks._options import IO_TASK

CANDIDATE_REJECTED = "mlops.candidate.rejected"
DRIFT_RETRAINING = "mlops.drift.retraining"


def model_event(event: str, model: str, payload: dict[str, Any]) -> Event:
    """The event, about `model`, related to the current flow run (if there is one)."""
    related = []
    if flow_run.id:
        related.append({"prefect.resource.id": f"prefect.flow-run.{flow_run.id}",
                        "prefect.resource.role": "flow-run",
                        "prefect.resource.name": str(flow_run.name)})
    return Event(
        event=event,
        resource={"prefect.resource.id": f"mlops.model.{model}",
                  "prefect.resource.name": model, "mlops.model": model},
        related=related,
        payload=payload,
    )


@task(**IO_TASK)
def announce_model_event(event: str, model: str, payload: dict[str, Any]) -> None:
    """Post one model event to the Prefect server's events API."""
    body = model_event(event, model, payload).model_dump(mode="json")
    with get_client(sync_client=True) as client:
        client.request("POST", "/events", json=[body]).raise_for_status()
    get_run_logger().info("Announced %s for %s", event, model)
