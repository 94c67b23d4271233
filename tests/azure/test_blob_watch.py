"""The data watcher on Blob Storage (Azurite): new and rewritten blobs, watermark on blob."""

from __future__ import annotations

import pytest

from mlops.data.watch import Watermark, scan, watermark_url
from tasks.watch import data_event

pytestmark = [pytest.mark.azurite, pytest.mark.service]


def test_new_and_overwritten_blobs_are_announced_once(blobs, container):
    location = f"abfs://{container}/incoming"
    state = f"abfs://{container}/state"

    def look() -> tuple[Watermark, object]:
        mark = Watermark.load(watermark_url(state, location), location)
        return mark, scan(location, mark, settle_s=0.2)

    mark, found = look()
    assert found.new == [] and not mark.exists  # nothing there yet

    blobs.put("incoming/day1.csv", b"a,b\n1,2\n")
    blobs.put("incoming/day2.csv.tmp", b"a,b\n")  # an upload in progress
    mark, found = look()
    assert [f.url for f in found.new] == [f"abfs://{container}/incoming/day1.csv"]
    event = data_event(found.new[0], "new", location, "configs/churn.yaml", "churn")
    assert event.resource.id == f"abfs://{container}/incoming/day1.csv"
    assert event.payload["version"] == found.new[0].version.strip('"')  # the blob's etag
    mark.seen = found.current
    mark.save()

    mark, found = look()  # a restarted watcher reads the watermark from blob
    assert mark.exists and found.new == [] and found.changed == []

    etag = blobs.put("incoming/day1.csv", b"a,b\n1,2\n3,4\n")  # rewritten: new etag
    mark, found = look()
    assert [f.url for f in found.changed] == [f"abfs://{container}/incoming/day1.csv"]
    assert found.changed[0].version == etag
