"""The Event Grid relay: an Event Grid delivery in, Prefect events out, on a real server."""

from __future__ import annotations

import json
import sys
import time
import uuid

import pytest
from prefect import get_client
from prefect.settings import PREFECT_API_URL

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "deployments" / "eventgrid_relay"))
import relay  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.service, pytest.mark.usefixtures("prefect_server")]

ACCOUNT = "https://mlopsdata.blob.core.windows.net"


def _blob_created(path: str, size: int = 2048, etag: str = "0x8DC0FFEE") -> dict:
    """What Event Grid delivers for a new blob (Event Grid schema)."""
    return {
        "topic": "/subscriptions/0000/resourceGroups/rg/providers/Microsoft.Storage/"
                 "storageAccounts/mlopsdata",
        "subject": f"/blobServices/default/containers/{path.split('/', 1)[0]}/blobs/"
                   f"{path.split('/', 1)[1]}",
        "eventType": "Microsoft.Storage.BlobCreated",
        "eventTime": "2026-11-23T02:00:00.000Z",
        "id": str(uuid.uuid4()),
        "data": {
            "api": "PutBlob", "clientRequestId": str(uuid.uuid4()),
            "requestId": str(uuid.uuid4()), "eTag": etag,
            "contentType": "application/octet-stream", "contentLength": size,
            "blobType": "BlockBlob", "url": f"{ACCOUNT}/{path}",
            "sequencer": "000000000000000000000000000099240000000000c41c18",
        },
        "dataVersion": "", "metadataVersion": "1",
    }


def _stored(url: str, timeout_s: float = 30) -> list[dict]:
    body = {"filter": {"event": {"name": [relay.EVENT_NAME]},
                       "any_resource": {"id": [url]}}, "limit": 10}
    deadline = time.monotonic() + timeout_s
    with get_client(sync_client=True) as client:
        while True:
            events = client.request("POST", "/events/filter", json=body).json()["events"]
            if events or time.monotonic() > deadline:
                return events
            time.sleep(0.5)


def test_blob_created_reaches_the_events_api(monkeypatch):
    monkeypatch.setenv("PREFECT_API_URL", PREFECT_API_URL.value())
    monkeypatch.setenv("MLOPS_SPEC_PATH", "configs/churn.yaml")
    monkeypatch.setenv("MLOPS_WATCH_PREFIX", "data/incoming")
    day = uuid.uuid4().hex[:8]
    delivery = [
        _blob_created(f"data/incoming/{day}.parquet", size=4096, etag="0x8DABC"),
        _blob_created(f"data/incoming/{day}.parquet.tmp"),  # an upload in progress
        _blob_created(f"data/elsewhere/{day}.parquet"),  # outside the watched prefix
        {**_blob_created(f"data/incoming/{day}.csv"), "eventType": "Microsoft.Storage.BlobDeleted"},
    ]
    reply = relay.handle(json.dumps(delivery).encode())
    url = f"abfs://data/incoming/{day}.parquet"
    assert reply.status == 200 and reply.body["relayed"] == [url]

    (event,) = _stored(url)
    assert event["event"] == "mlops.data.arrived"  # what the training-on-new-data trigger expects
    assert event["payload"] == {
        "url": url, "size": 4096, "version": "0x8DABC", "change": "new",
        "location": "abfs://data/incoming", "spec_path": "configs/churn.yaml",
        "model": "churn", "source": "eventgrid",
    }
    assert event["resource"]["mlops.model"] == "churn"  # what churn's trigger matches

    # Event Grid delivers at least once: a redelivery carries the same event id
    again = relay.to_prefect_event(delivery[0], "configs/churn.yaml", "churn")
    assert again["id"] == event["id"]


def test_subscription_handshake_and_bad_bodies():
    code = str(uuid.uuid4())
    reply = relay.handle(json.dumps([{
        "id": "1", "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
        "data": {"validationCode": code}, "eventTime": "2026-11-23T00:00:00Z",
    }]).encode())
    assert reply == relay.Reply(200, {"validationResponse": code})
    assert relay.handle(b"{nope").status == 400
    assert relay.handle(b'"a string"').status == 400


def test_unreachable_server_answers_502_so_event_grid_retries(monkeypatch):
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:9/api")
    reply = relay.handle(json.dumps([_blob_created("data/incoming/x.parquet")]).encode())
    assert reply.status == 502


def test_azurite_urls_map_to_the_same_abfs_url():
    assert relay.blob_to_abfs("http://127.0.0.1:10000/devstoreaccount1/data/in/a.csv") == (
        "abfs://data/in/a.csv"
    )
    assert relay.blob_to_abfs(f"{ACCOUNT}/data/in/a%20b.csv") == "abfs://data/in/a b.csv"
