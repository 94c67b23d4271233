"""Azure Event Grid (blob created) -> the Prefect server's events API.

Self-hosted Prefect has no webhooks, so a small relay (deployed as an Azure Function, see
function_app.py) turns each `Microsoft.Storage.BlobCreated` event into the same
`mlops.data.arrived` event the data watcher emits; the `training-on-new-data` deployment's
trigger starts a training run on the blob's URL.

Standalone on purpose (standard library + httpx): the Function ships this folder only.

Settings (environment):
    PREFECT_API_URL      the server's API, e.g. https://prefect.example.com/api (required)
    PREFECT_API_AUTH_STRING  "user:password" when the server has basic auth (optional)
    MLOPS_SPEC_PATH      spec of the model the data feeds (default configs/churn.yaml)
    MLOPS_WATCH_PREFIX   only blobs under this "container/path" prefix (default: all)
    MLOPS_MODEL          the model whose inbox the prefix is (default: the spec file's stem);
                         the events' `mlops.model` label, which that model's on-new-data
                         trigger matches. One relay (or Function app setting) per model prefix.
"""

from __future__ import annotations

import base64
import json
import os
import posixpath
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from fnmatch import fnmatch
from typing import Any
from urllib.parse import unquote, urlparse

import httpx

EVENT_NAME = "mlops.data.arrived"  # the same event as flows/watch_data.py
BLOB_CREATED = "Microsoft.Storage.BlobCreated"
VALIDATION = "Microsoft.EventGrid.SubscriptionValidationEvent"
TEMP_PATTERNS = ("*.tmp", "*.part", "*.crc", "*.inprogress", "*~")
DATA_EXTENSIONS = (".parquet", ".pq", ".csv")


@dataclass(frozen=True)
class Reply:
    status: int
    body: dict[str, Any]


def blob_to_abfs(blob_url: str) -> str:
    """https://<account>.blob.core.windows.net/<container>/<path> -> abfs://<container>/<path>.

    Also accepts Azurite's http://127.0.0.1:10000/<account>/<container>/<path>.
    """
    parsed = urlparse(blob_url)
    parts = [p for p in unquote(parsed.path).split("/") if p]
    if not parsed.hostname or ".blob." not in parsed.hostname:
        parts = parts[1:]  # emulator URLs carry the account name as the first segment
    if len(parts) < 2:
        raise ValueError(f"not a blob URL: {blob_url}")
    return f"abfs://{'/'.join(parts)}"


def _is_data(url: str) -> bool:
    path = url.removeprefix("abfs://")
    segments = path.split("/")
    if any(s.startswith(("_", ".")) for s in segments[1:]):
        return False
    name = segments[-1].lower()
    return name.endswith(DATA_EXTENSIONS) and not any(fnmatch(name, p) for p in TEMP_PATTERNS)


def to_prefect_event(grid: dict[str, Any], spec_path: str, model: str) -> dict[str, Any]:
    """One BlobCreated event as a Prefect event; its id derives from Event Grid's, so a
    redelivered event (Event Grid retries) carries the same id."""
    data = grid.get("data") or {}
    url = blob_to_abfs(data["url"])
    return {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"eventgrid:{grid.get('id', url)}")),
        "occurred": grid.get("eventTime") or datetime.now(UTC).isoformat(),
        "event": EVENT_NAME,
        "resource": {
            "prefect.resource.id": url,
            "prefect.resource.name": posixpath.basename(url),
            "mlops.location": posixpath.dirname(url),
            "mlops.model": model,
        },
        "payload": {
            "url": url,
            "size": int(data.get("contentLength") or 0),
            "version": str(data.get("eTag", "")).strip('"'),
            "change": "new",
            "location": posixpath.dirname(url),
            "spec_path": spec_path,
            "model": model,
            "source": "eventgrid",
        },
    }


def _headers() -> dict[str, str]:
    auth = os.environ.get("PREFECT_API_AUTH_STRING")
    if not auth:
        return {}
    return {"Authorization": "Basic " + base64.b64encode(auth.encode()).decode()}


def _parse(body: bytes) -> list[dict[str, Any]] | Reply:
    try:
        events = json.loads(body)
    except ValueError:
        return Reply(400, {"error": "body is not JSON"})
    if isinstance(events, dict):
        events = [events]
    if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
        return Reply(400, {"error": "expected a JSON array of Event Grid events"})
    return events


def _wanted(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """BlobCreated events for data files under the prefix, as Prefect events."""
    spec_path = os.environ.get("MLOPS_SPEC_PATH", "configs/churn.yaml")
    prefix = os.environ.get("MLOPS_WATCH_PREFIX", "").strip("/")
    model = os.environ.get("MLOPS_MODEL") or posixpath.splitext(posixpath.basename(spec_path))[0]
    wanted = []
    for event in events:
        if event.get("eventType") != BLOB_CREATED or "url" not in (event.get("data") or {}):
            continue
        prefect_event = to_prefect_event(event, spec_path, model)
        url = prefect_event["payload"]["url"]
        if _is_data(url) and url.removeprefix("abfs://").startswith(prefix):
            wanted.append(prefect_event)
    return wanted


def handle(body: bytes, client: httpx.Client | None = None) -> Reply:
    """Answer one Event Grid delivery (a JSON array of events).

    The subscription handshake is answered with its validation code; BlobCreated events for
    data files under the prefix are posted to the events API in one request. A failure of that
    POST answers 502, so Event Grid retries the delivery later (nothing is lost).
    """
    events = _parse(body)
    if isinstance(events, Reply):
        return events
    for event in events:
        if event.get("eventType") == VALIDATION:
            return Reply(200, {"validationResponse": event["data"]["validationCode"]})
    relayed = _wanted(events)
    if relayed:
        api = os.environ["PREFECT_API_URL"].rstrip("/")
        with (client or httpx.Client(timeout=30)) as http:
            try:
                http.post(f"{api}/events", json=relayed, headers=_headers()).raise_for_status()
            except httpx.HTTPError as exc:
                return Reply(502, {"error": f"events API: {exc}"})
    return Reply(200, {"relayed": [e["payload"]["url"] for e in relayed]})
