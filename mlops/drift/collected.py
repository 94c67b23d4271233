"""The current side of a drift check on Azure: what Azure ML's data collector wrote.

A managed deployment whose ``data_collector`` enables ``model_inputs`` (deployment.yml) gets
each batch score.py collects (``serving.mdc``) written to the workspace blob store, rolled by
hour, one JSON object per line with the rows as records under ``data`` and the UTC time it was
logged under ``time``::

    modelDataCollector/<endpoint>/<deployment>/model_inputs/YYYY/MM/DD/HH/<instance>.jsonl

Every deployment of the endpoint counts (inputs are what clients send, whichever deployment
answered); lines logged before the window's start are left out.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta

import pyarrow as pa

from mlops.core.errors import DataLoadError
from mlops.data.storage import url_to_fs
from mlops.drift.data import CurrentData, project_columns, window_data

logger = logging.getLogger(__name__)

COLLECTOR_ROOT = "modelDataCollector"  # under the datastore Azure ML writes to
INPUTS = "model_inputs"


def window_hours(start: datetime, end: datetime) -> list[str]:
    """The collector's hour folders (``YYYY/MM/DD/HH``, UTC) that [start, end] touches."""
    hour = start.replace(minute=0, second=0, microsecond=0)
    hours = []
    while hour <= end:
        hours.append(f"{hour:%Y/%m/%d/%H}")
        hour += timedelta(hours=1)
    return hours


def _records(text: str, url: str, start: datetime) -> list[dict]:
    """The rows of the file's lines logged at or after `start`."""
    rows: list[dict] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
            logged = datetime.fromisoformat(event["time"])
            data = event["data"]
        except (ValueError, KeyError, TypeError) as exc:
            raise DataLoadError(
                f"{url} line {number} is not a data collector event with 'time' and 'data' "
                f"({exc}): {line[:120]!r}"
            ) from exc
        if not isinstance(data, list):
            raise DataLoadError(
                f"{url} line {number}: 'data' holds {type(data).__name__}, not a list of rows; "
                f"is this a request/response payload log rather than {INPUTS}?"
            )
        if logged >= start:
            rows.extend(data)
    return rows


def read_collected_window(
    root_url: str, names: list[str], start: datetime, end: datetime
) -> CurrentData:
    """Rows Azure ML's data collector logged for the endpoint since `start` (UTC).

    Args:
        root_url: The endpoint's folder, ``<datastore URL>/modelDataCollector/<endpoint>``.
        names: The feature columns wanted.
        start: Oldest logging time included (timezone-aware).
        end: Now; hour folders after it are not listed.
    """
    fs, root = url_to_fs(root_url)
    root = root.rstrip("/")
    deployments = fs.ls(root, detail=False) if fs.exists(root) else []
    tables, files = [], 0
    for deployment in sorted(deployments):
        for hour in window_hours(start, end):
            folder = f"{deployment}/{INPUTS}/{hour}"
            if not fs.exists(folder):
                continue
            for path in sorted(fs.glob(f"{folder}/*.jsonl")):
                rows = _records(fs.cat_file(path).decode(), path, start)
                files += 1
                if rows:
                    tables.append(project_columns(pa.Table.from_pylist(rows), names))
    return window_data(tables, root_url, f"Azure ML data collector {root_url} ({INPUTS}",
                       (start, end), files)
