"""Watch a data location and announce new or changed files as Prefect events.

Scheduled every minute in the local stack, one watcher per model on its own inbox
(`data/incoming/<model>`; prefect.yaml `watch-data`, repeated per spec by tools/deployments.py).
Each new or changed file becomes one `mlops.data.arrived` event whose resource id is the file's
URL and whose `mlops.model` label names the model; that model's `training-on-new-data`
deployment's trigger starts a training run on it. Watching a scoring
inbox (`purpose='scoring'`), the event is `mlops.scoring-data.arrived` and the
`batch-scoring-on-new-data` deployment scores the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from prefect import flow, get_run_logger

from flows import _runtime
from mlops.core.settings import DEFAULT_SPEC
from mlops.data.storage import protocol_of
from tasks.watch import announce, data_event, look, model_of, remember

_runtime.install()  # heartbeat join and exit collection (see flows/_runtime.py)


@flow(name="watch-data", log_prints=False)
def watch_data(
    location: str = "data/incoming/churn",
    spec_path: str = DEFAULT_SPEC,
    format: str = "auto",  # noqa: A002 - the UI shows parameter names; 'format' is the word
    settle_s: float = 2.0,
    announce_existing: bool = False,
    purpose: Literal["training", "scoring"] = "training",
    model: str | None = None,
) -> dict:
    """Announce every new or changed data file at a location, once.

    Args:
        location: The folder, glob or URL to watch (local path, file://, abfs://).
        spec_path: The spec of the model this data feeds; passed on with each event.
        format: 'auto', 'parquet' or 'csv'.
        settle_s: Seconds between the two looks; a file that changes in between is still
            being written and waits for the next run.
        announce_existing: On the very first run, announce the files already there (off:
            they are only recorded, so pointing the watcher at a full folder starts nothing).
        purpose: What the files are for: 'training' announces mlops.data.arrived (training
            starts), 'scoring' announces mlops.scoring-data.arrived (batch scoring starts).
        model: The model whose inbox this is, as the events' `mlops.model` label that the
            on-new-data triggers match (default: the spec's name).
    """
    if protocol_of(location) == "file":
        location = str(Path(location.removeprefix("file://")).resolve())
    model = model or model_of(spec_path)
    watermark, found = look(location, format, settle_s)
    first_run = not watermark.exists
    events = [data_event(f, "new", location, spec_path, model, purpose) for f in found.new]
    events += [data_event(f, "changed", location, spec_path, model, purpose)
               for f in found.changed]
    if first_run and not announce_existing and events:
        get_run_logger().info(
            "First look at %s: recorded %d existing file(s) without announcing them",
            location, len(events),
        )
        events = []
    announced = announce(events)
    remember(watermark, found)
    return {"announced": announced, "unsettled": len(found.unsettled), "gone": len(found.gone)}
