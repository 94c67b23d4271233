"""Watch a data location and announce new or changed files as Prefect events.

Scheduled every minute in the local stack (prefect.yaml: `watch-data`). Each new or changed file
becomes one `mlops.data.arrived` event whose resource id is the file's URL; the
`training-on-new-data` deployment's trigger starts a training run on it. Watching a scoring
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
from tasks.watch import announce, data_event, look, remember

_runtime.install()  # heartbeat join and exit collection (see flows/_runtime.py)


@flow(name="watch-data", log_prints=False)
def watch_data(
    location: str = "data/incoming",
    spec_path: str = DEFAULT_SPEC,
    format: str = "auto",  # noqa: A002 - the UI shows parameter names; 'format' is the word
    settle_s: float = 2.0,
    announce_existing: bool = False,
    purpose: Literal["training", "scoring"] = "training",
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
    """
    if protocol_of(location) == "file":
        location = str(Path(location.removeprefix("file://")).resolve())
    watermark, found = look(location, format, settle_s)
    first_run = not watermark.exists
    events = [data_event(f, "new", location, spec_path, purpose) for f in found.new]
    events += [data_event(f, "changed", location, spec_path, purpose) for f in found.changed]
    if first_run and not announce_existing and events:
        get_run_logger().info(
            "First look at %s: recorded %d existing file(s) without announcing them",
            location, len(events),
        )
        events = []
    announced = announce(events)
    remember(watermark, found)
    return {"announced": announced, "unsettled": len(found.unsettled), "gone": len(found.gone)}
