"""Reading Evidently's verdicts (the typed helper), and the run's summary."""

from __future__ import annotations

import json

import pytest

from mlops.core.errors import ReportError
from mlops.drift.compute import ColumnDrift, DriftResult
from mlops.drift.report import (
    EvidentlyColumn,
    EvidentlyDrift,
    ReportSample,
    drift_markdown,
    read_evidently_drift,
    result_json,
)


class _Snapshot:
    """Stands in for an Evidently Snapshot: only its `dict()` export is read."""

    def __init__(self, exported):
        self.exported = exported

    def dict(self):
        return self.exported


def _metric(column, value, method="Wasserstein distance (normed)"):
    return {"id": column, "config": {"type": "evidently:metric_v2:ValueDrift", "column": column,
                                     "method": method, "threshold": 0.1}, "value": value}


def _test(column, status):
    return {"id": "drift", "status": status, "metric_config": {
        "params": {"type": "evidently:metric_v2:ValueDrift", "column": column}}}


COUNT = {"id": "n", "config": {"type": "evidently:metric_v2:DriftedColumnsCount",
                               "drift_share": 0.5}, "value": {"count": 1.0, "share": 0.5}}


def test_reads_each_columns_score_and_verdict():
    verdicts = read_evidently_drift(_Snapshot({
        "metrics": [COUNT, _metric("a", 0.3), _metric("b", 0.01)],
        "tests": [_test("a", "FAIL"), _test("b", "SUCCESS")],
    }))
    assert verdicts.drifted_count == 1 and verdicts.share == 0.5
    assert verdicts.columns["a"] == EvidentlyColumn(
        "a", "Wasserstein distance (normed)", 0.3, 0.1, True
    )
    assert not verdicts.columns["b"].drifted


@pytest.mark.parametrize("exported, message", [
    ({"metrics": [COUNT, _metric("a", 0.3)], "tests": []}, "test for 'a' is None"),
    ({"metrics": [COUNT, _metric("a", 0.3)], "tests": [_test("a", "ERROR")]}, "is ERROR"),
    ({"metrics": [_metric("a", 0.3)], "tests": [_test("a", "FAIL")]}, "no DriftedColumnsCount"),
    ({"metrics": [{"config": {}}], "tests": []}, "unexpected shape"),
])
def test_an_unexpected_snapshot_is_a_clear_error(exported, message):
    with pytest.raises(ReportError, match=message):
        read_evidently_drift(_Snapshot(exported))


def _result():
    return DriftResult(
        (
            ColumnDrift("age", "num", "wasserstein", "Wasserstein distance (normed)", 0.31, 0.1,
                        True),
            ColumnDrift("region", "cat", "jensenshannon", "Jensen-Shannon distance", 0.098, 0.1,
                        False),
        ),
        drift_share=0.5, reference_rows=5000, current_rows=1200,
    )


def test_markdown_lists_every_column_and_where_the_sample_disagrees():
    sample = ReportSample(
        EvidentlyDrift({
            "age": EvidentlyColumn("age", "W", 0.3, 0.1, True),
            "region": EvidentlyColumn("region", "JS", 0.102, 0.1, True),
        }, 2, 1.0),
        reference_rows=5000, current_rows=1200,
    )
    text = drift_markdown(_result(), title="churn", sources="Reference: ...",
                          report_url="/tmp/r.html", report=sample, outcome="started training")
    assert "**1 of 2 columns drifted (share 0.50 >= 0.5)**: started training" in text
    assert "| age | wasserstein | 0.3100 | 0.1 | **yes** |" in text
    assert "| region | jensenshannon | 0.0980 | 0.1 | no |" in text
    assert "`/tmp/r.html`" in text and "5,000 reference and 1,200 current rows" in text
    assert "region: drift on the sample (score 0.1020), no drift on all rows" in text


def test_result_json_round_trips():
    payload = json.loads(result_json(_result(), {"champion_version": 3}))
    assert payload["champion_version"] == 3 and payload["dataset_drift"] is True
    assert [c["column"] for c in payload["columns"]] == ["age", "region"]
