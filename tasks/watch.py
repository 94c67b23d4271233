"""The data watcher's tasks: look at a location, announce what is new as Prefect events."""

from __future__ import annotations

import posixpath
from typing import Any

from prefect import get_run_logger, task
from prefect.client.orchestration import get_client
from prefect.events import Event

from mlops.core.settings import get_settings
from mlops.core.spec import load_spec
from mlops.data.storage import FileInfo, protocol_of
from mlops.data.watch import Scan, Watermark, scan, watermark_url
from tasks._options import IO_TASK

EVENT_NAME = "mlops.data.arrived"
# What the watched files are for -> the event announcing them: training data starts the
# training-on-new-data deployment, files in a scoring inbox start batch-scoring-on-new-data.
EVENT_NAMES = {"training": EVENT_NAME, "scoring": "mlops.scoring-data.arrived"}


def file_url(info: FileInfo) -> str:
    """The file's URL as events name it: `file://` for local files, the store's URL otherwise."""
    return f"file://{info.url}" if protocol_of(info.url) == "file" else info.url


def data_event(info: FileInfo, change: str, location: str, spec_path: str, model: str,
               purpose: str = "training") -> Event:
    """One new or changed file as a Prefect event; the resource id is the file's URL, the
    event's name says what the file is for (`EVENT_NAMES`) and the `mlops.model` label whose
    file it is: each model's on-new-data triggers match only their own model."""
    url = file_url(info)
    return Event(
        event=EVENT_NAMES[purpose],
        resource={
            "prefect.resource.id": url,
            "prefect.resource.name": posixpath.basename(info.url),
            "mlops.location": location,
            "mlops.model": model,
        },
        payload={
            "url": url, "size": info.size, "version": info.version, "change": change,
            "location": location, "spec_path": spec_path, "model": model,
        },
    )


def model_of(spec_path: str) -> str:
    """The model a spec describes (its `name`), as the watcher's events label it."""
    return load_spec(spec_path).name


@task(**IO_TASK)
def look(location: str, fmt: str, settle_s: float) -> tuple[Watermark, Scan]:
    """List the location twice, a settling pause apart, against the persisted watermark."""
    watermark = Watermark.load(
        watermark_url(str(get_settings().state_dir), location), location
    )
    found = scan(location, watermark, fmt=fmt, settle_s=settle_s)
    logger = get_run_logger()
    logger.info(
        "%s: %d new, %d changed, %d still being written, %d gone",
        location, len(found.new), len(found.changed), len(found.unsettled), len(found.gone),
    )
    for url in found.unsettled:
        logger.info("Not announced yet (still changing): %s", url)
    return watermark, found


@task(**IO_TASK)
def announce(events: list[Event]) -> int:
    """Post the events to the Prefect server's events API and wait for it to accept them.

    A synchronous POST (not the background emitter), so the watermark is saved only once the
    server has the events; a failure raises and the task retries.
    """
    if not events:
        return 0
    body: list[dict[str, Any]] = [e.model_dump(mode="json") for e in events]
    with get_client(sync_client=True) as client:
        client.request("POST", "/events", json=body).raise_for_status()
    for event in events:
        get_run_logger().info("Announced %s (%s)", event.resource.id, event.payload["change"])
    return len(events)


@task(**IO_TASK)
def remember(watermark: Watermark, found: Scan) -> None:
    """Save what was announced, so a restarted watcher never announces it again."""
    watermark.seen = found.current
    watermark.save()
