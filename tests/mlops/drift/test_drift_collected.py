"""Reading Azure ML's data collector files: the hour folders of a window, and clear errors for
lines that are not its model_inputs events. (On blob storage, judged: tests/azure.)"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from mlops.core.errors import DataLoadError
from mlops.drift.collected import read_collected_window, window_hours

NOW = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)


def _write(root, lines: list[str], hour: str = "2026/03/02/01") -> None:
    folder = root / "ep" / "blue" / "model_inputs" / hour
    folder.mkdir(parents=True)
    (folder / "instance-1.jsonl").write_text("\n".join(lines) + "\n")


def _event(data, at: datetime = NOW) -> str:
    return json.dumps({"time": f"{at:%Y-%m-%dT%H:%M:%SZ}", "data": data})


def test_window_hours_cover_each_utc_hour_touched():
    assert window_hours(NOW - timedelta(hours=2), NOW) == [
        "2026/03/01/23", "2026/03/02/00", "2026/03/02/01"
    ]


def test_rows_of_every_line_since_the_start(tmp_path):
    _write(tmp_path, [
        _event([{"Age": 30, "region": "north"}, {"Age": 41, "region": "south"}]),
        "",
        _event([{"Age": 52, "region": "east"}], at=NOW - timedelta(minutes=31)),  # too old
    ])
    current = read_collected_window(str(tmp_path / "ep"), ["age", "region"],
                                    NOW - timedelta(minutes=30), NOW)
    assert current.table.to_pydict() == {"age": [30, 41], "region": ["north", "south"]}


@pytest.mark.parametrize(("line", "message"), [
    ('{"time": "2026-03-02T01:00:00Z"}', r"line 2 is not a data collector event .*'data'"),
    ("not json", "line 2 is not a data collector event"),
    (_event({"input_data": [[1, 2]]}), r"line 2: 'data' holds dict, not a list of rows; is this"),
])
def test_a_line_that_is_not_a_model_inputs_event_is_named(tmp_path, line, message):
    _write(tmp_path, [_event([{"age": 1}]), line])
    with pytest.raises(DataLoadError, match=message) as caught:
        read_collected_window(str(tmp_path / "ep"), ["age"], NOW - timedelta(hours=1), NOW)
    assert "instance-1.jsonl" in str(caught.value)
