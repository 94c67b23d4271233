"""The data watcher flow on a real Prefect server: one event per new file, never twice."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from prefect import get_client

from flows.watch_data import watch_data
from tasks.watch import EVENT_NAME

pytestmark = [pytest.mark.slow, pytest.mark.service, pytest.mark.usefixtures("prefect_server")]


def _events_for(location: str, expect: int, timeout_s: float = 30) -> list[dict]:
    """The mlops.data.arrived events the server holds for a location (waits for `expect`)."""
    body = {"filter": {"event": {"name": [EVENT_NAME]}, "any_resource": {
        "labels": {"mlops.location": [location]}}}, "limit": 50}
    deadline = time.monotonic() + timeout_s
    with get_client(sync_client=True) as client:
        while True:
            events = client.request("POST", "/events/filter", json=body).json()["events"]
            if len(events) >= expect or time.monotonic() > deadline:
                return events
            time.sleep(0.5)


def test_announces_each_new_file_once(tmp_path, monkeypatch):
    monkeypatch.setenv("MLOPS_STATE_DIR", str(tmp_path / "state"))
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "old.csv").write_text("a\n1\n")

    first = watch_data(location=str(inbox), spec_path="configs/churn.yaml", settle_s=0.2)
    assert first["announced"] == 0  # what was there before the first look is only recorded

    (inbox / "day1.csv").write_text("a\n1\n2\n")
    (inbox / "day2.csv.tmp").write_text("a\n")  # still being uploaded
    second = watch_data(location=str(inbox), spec_path="configs/churn.yaml", settle_s=0.2)
    assert second["announced"] == 1

    # a restarted watcher (a new run, same state folder) announces nothing again
    assert watch_data(location=str(inbox), settle_s=0.2)["announced"] == 0

    events = _events_for(str(inbox), expect=1)
    assert len(events) == 1
    event = events[0]
    url = f"file://{inbox / 'day1.csv'}"
    assert event["resource"]["prefect.resource.id"] == url
    assert event["payload"]["url"] == url and event["payload"]["change"] == "new"
    assert event["payload"]["size"] == (inbox / "day1.csv").stat().st_size
    assert event["payload"]["spec_path"] == "configs/churn.yaml"
    # the label each model's on-new-data trigger matches: the spec's model by default
    assert event["resource"]["mlops.model"] == "churn" == event["payload"]["model"]


def test_announce_existing_on_the_first_look(tmp_path, monkeypatch):
    monkeypatch.setenv("MLOPS_STATE_DIR", str(tmp_path / "state"))
    inbox = Path(tmp_path / "full")
    inbox.mkdir()
    for day in range(3):
        (inbox / f"day{day}.csv").write_text("a\n1\n")
    result = watch_data(location=str(inbox), settle_s=0, announce_existing=True)
    assert result["announced"] == 3
    assert len(_events_for(str(inbox), expect=3)) == 3
