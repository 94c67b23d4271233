"""The watcher's memory: what counts as new, changed, still being written, and seen."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from mlops.core.errors import DataLoadError
from mlops.data.watch import Watermark, scan, watermark_url


def _write(path: Path, text: str = "a,b\n1,2\n") -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


def _mark(tmp_path: Path, location: Path) -> Watermark:
    return Watermark.load(watermark_url(str(tmp_path / "state"), str(location)), str(location))


def test_new_then_seen_then_changed_then_gone(tmp_path):
    inbox = tmp_path / "inbox"
    first = _write(inbox / "day1.csv")
    mark = _mark(tmp_path, inbox)
    assert not mark.exists

    found = scan(str(inbox), mark, settle_s=0)
    assert [f.url for f in found.new] == [first] and not found.changed
    mark.seen = found.current
    mark.save()

    again = _mark(tmp_path, inbox)  # a restarted watcher reads what the last one saved
    assert again.exists
    assert scan(str(inbox), again, settle_s=0).new == []

    _write(inbox / "day1.csv", "a,b\n1,2\n3,4\n")  # rewritten: size and mtime change
    second = _write(inbox / "sub" / "day2.csv")
    found = scan(str(inbox), again, settle_s=0)
    assert [f.url for f in found.changed] == [first]
    assert [f.url for f in found.new] == [second]

    again.seen = found.current
    os.remove(first)
    found = scan(str(inbox), again, settle_s=0)
    assert found.gone == [first] and first not in found.current


def test_half_written_names_and_other_formats_are_not_announced(tmp_path):
    inbox = tmp_path / "inbox"
    _write(inbox / "day1.csv.tmp")
    _write(inbox / "day1.parquet.part")
    _write(inbox / "_temporary" / "0" / "x.csv")
    _write(inbox / "notes.txt")
    found = scan(str(inbox), _mark(tmp_path, inbox), settle_s=0)
    assert found.new == [] and found.current == {}


def test_a_file_that_grows_between_the_two_looks_waits(tmp_path):
    inbox = tmp_path / "inbox"
    growing = _write(inbox / "big.csv")
    done = _write(inbox / "done.csv")

    def append() -> None:
        time.sleep(0.2)
        with open(growing, "a") as handle:
            handle.write("5,6\n")

    writer = threading.Thread(target=append)
    writer.start()
    found = scan(str(inbox), _mark(tmp_path, inbox), settle_s=1.0)
    writer.join()
    assert found.unsettled == [growing]
    assert [f.url for f in found.new] == [done]
    assert growing not in found.current  # so the next scan still sees it as new


def test_missing_or_empty_location_is_nothing_new(tmp_path):
    assert scan(str(tmp_path / "nowhere"), _mark(tmp_path, tmp_path / "nowhere")).new == []
    (tmp_path / "empty").mkdir()
    assert scan(str(tmp_path / "empty"), _mark(tmp_path, tmp_path / "empty")).new == []


def test_watermark_of_another_location_or_corrupt_is_refused(tmp_path):
    inbox = tmp_path / "inbox"
    mark = _mark(tmp_path, inbox)
    mark.save()
    with pytest.raises(DataLoadError, match="belongs to"):
        Watermark.load(mark.url, str(tmp_path / "elsewhere"))
    Path(mark.url).write_text("{not json")
    with pytest.raises(DataLoadError, match="unreadable"):
        Watermark.load(mark.url, str(inbox))
