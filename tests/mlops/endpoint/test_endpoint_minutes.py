"""Windowed readings (Azure Monitor's minutes): what a step counts, its p95, and how the
service's answer becomes them (``mlops.endpoint.azure_monitor.stats_of``)."""

from __future__ import annotations

import pytest
from azure.monitor.querymetrics import MetricsQueryResult

from mlops.core.errors import EndpointError
from mlops.endpoint.azure_monitor import stats_of
from mlops.endpoint.metrics import DeploymentStats, Minute

T0 = 1_800_000_000.0  # a minute boundary


def _stats(*minutes: Minute, read_at: float = T0 + 600) -> DeploymentStats:
    return DeploymentStats.of_minutes(list(minutes), read_at)


@pytest.mark.parametrize(("read_at", "kept"), [(T0 + 30, [60, 120]), (T0 + 60, [60, 120]),
                                               (T0 + 61, [120])])
def test_a_step_counts_the_minutes_that_begin_once_it_began(read_at, kept):
    later = _stats(*(Minute(T0 + s, {"2xx": 10, "5xx": s // 60}) for s in (0, 60, 120)))
    step = later.since(DeploymentStats(read_at=read_at))
    assert [m.start - T0 for m in step.minutes] == kept
    assert step.requests == sum(10 + s // 60 for s in kept)
    assert step.errors == sum(s // 60 for s in kept)
    assert step.read_at == later.read_at


def test_the_p95_of_minutes_is_weighted_by_their_requests():
    stats = _stats(Minute(T0, {"2xx": 100}, 0.1), Minute(T0 + 60, {"2xx": 300}, 0.2),
                   Minute(T0 + 120, {"2xx": 50}, None), Minute(T0 + 180, {}, 9.0))
    assert stats.p95() == pytest.approx((100 * 0.1 + 300 * 0.2) / 400)
    assert _stats(Minute(T0, {"2xx": 5}, None)).p95() is None
    assert DeploymentStats().p95() is None


def test_counters_keep_their_histogram_p95():
    counters = DeploymentStats({"2xx": 10}, ((0.1, 10), (float("inf"), 10)))
    assert counters.p95() == counters.quantile(0.95) == pytest.approx(0.095)


def _answer(*metrics: dict) -> list[MetricsQueryResult]:
    """The SDK's result for a 2024-02-01 ``metrics:getBatch`` answer with these metrics."""
    return [MetricsQueryResult._from_generated({  # the SDK's own reading of the JSON
        "starttime": "2027-01-15T08:00:00Z", "endtime": "2027-01-15T08:10:00Z",
        "interval": "PT1M", "value": list(metrics)})]


def _metric(name: str, series: list[tuple[dict[str, str], list[dict]]]) -> dict:
    return {"id": f"x/{name}", "type": "Microsoft.Insights/metrics",
            "name": {"value": name}, "unit": "Count", "timeseries": [
                {"metadatavalues": [{"name": {"value": k}, "value": v} for k, v in dims.items()],
                 "data": data} for dims, data in series]}


def test_answers_become_minutes_by_deployment_and_status_class():
    t1, t2 = "2027-01-15T08:01:00Z", "2027-01-15T08:02:00Z"
    counts = _answer(_metric("RequestsPerMinute", [
        ({"deployment": "green", "statusCodeClass": "2xx"},
         [{"timeStamp": t1, "total": 58.0}, {"timeStamp": t2}]),
        ({"deployment": "green", "statuscodeclass": "5XX"}, [{"timeStamp": t1, "total": 2.0}]),
        ({"deployment": "blue", "statusCodeClass": "2xx"}, [{"timeStamp": t1, "total": 540.0}]),
    ]))
    latency = _answer(_metric("RequestLatency_P95", [
        ({"deployment": "green"}, [{"timeStamp": t1, "average": 250.0}]),
    ]))
    stats = stats_of(counts, latency, read_at=T0)
    green = stats["green"]
    assert [m.by_class for m in green.minutes] == [{"2xx": 58, "5xx": 2}]  # t2 had no data
    assert (green.requests, green.errors, green.p95()) == (60, 2, pytest.approx(0.25))
    assert stats["blue"].requests == 540 and stats["blue"].p95() is None


def test_an_answer_without_the_request_metric_is_an_error():
    with pytest.raises(EndpointError, match="no RequestsPerMinute metric"):
        stats_of(_answer(), _answer(), read_at=T0)
