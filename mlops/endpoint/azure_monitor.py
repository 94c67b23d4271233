"""Live numbers of a managed online endpoint's deployments, read from Azure Monitor.

Azure ML sends each managed online endpoint's traffic to Azure Monitor as platform metrics of
the endpoint (namespace ``Microsoft.MachineLearningServices/workspaces/onlineEndpoints``), one
point a minute: ``RequestsPerMinute`` split by the ``deployment`` and ``statusCodeClass``
dimensions, and ``RequestLatency_P95`` (milliseconds) by ``deployment``. `EndpointMonitor` reads
both through azure-monitor-querymetrics' ``MetricsClient`` (the metrics data-plane API of the
endpoint's region) over the minutes since its first reading, and gives one `DeploymentStats`
per deployment made of those minutes; `DeploymentStats.since` keeps the minutes of one step.

A minute reaches Azure Monitor a minute or two after it ends: `DELAY_S` is how much longer the
canary holds a step on Azure, so that the step is judged on minutes that cover it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from mlops.azureml.client import azure_errors, credential
from mlops.core.errors import EndpointError
from mlops.endpoint.metrics import DeploymentStats, Minute

NAMESPACE = "Microsoft.MachineLearningServices/workspaces/onlineEndpoints"
REQUESTS = "RequestsPerMinute"
LATENCY_P95 = "RequestLatency_P95"
GRAIN = timedelta(minutes=1)
DELAY_S = 180.0
# Time series per query: deployments x status classes (the API gives 10 when a filter splits).
MAX_SERIES = 100


def metrics_client(location: str) -> Any:
    """A client of Azure Monitor's metrics API in `location` (the endpoint's region)."""
    from azure.monitor.querymetrics import MetricsClient  # noqa: PLC0415 (only for held steps)

    return MetricsClient(f"https://{location}.metrics.monitor.azure.com", credential())


def _points(results: list[Any], metric: str) -> Iterator[tuple[dict[str, str], Any]]:
    """Each data point of `metric` with its time series' dimensions (names in lower case, as
    the service does not keep one spelling)."""
    for result in results:
        for found in result.metrics:
            if (found.name or "").lower() != metric.lower():
                continue
            for series in found.timeseries:
                dims = {k.lower(): v for k, v in (series.metadata_values or {}).items()}
                for point in series.data:
                    yield dims, point


def stats_of(counts: list[Any], latency: list[Any], read_at: float) -> dict[str, DeploymentStats]:
    """Per deployment, its minutes with answers: counts by status class (``2xx``...) and the
    p95 latency in seconds.

    Raises:
        EndpointError: the answer has no ``RequestsPerMinute`` metric at all.
    """
    if not any((m.name or "").lower() == REQUESTS.lower() for r in counts for m in r.metrics):
        raise EndpointError(f"Azure Monitor answered no {REQUESTS} metric for the endpoint")
    classes: dict[str, dict[float, dict[str, int]]] = {}
    for dims, point in _points(counts, REQUESTS):
        if point.total is None or point.timestamp is None:
            continue  # a minute without data
        minute = classes.setdefault(dims.get("deployment", ""), {}).setdefault(
            point.timestamp.timestamp(), {})
        code = (dims.get("statuscodeclass") or "other").lower()
        minute[code] = minute.get(code, 0) + round(point.total)
    p95: dict[tuple[str, float], float] = {
        (dims.get("deployment", ""), point.timestamp.timestamp()): point.average / 1000.0
        for dims, point in _points(latency, LATENCY_P95)
        if point.average is not None and point.timestamp is not None
    }
    return {
        name: DeploymentStats.of_minutes(
            [Minute(start, by_class, p95.get((name, start))) for start, by_class in
             minutes.items()], read_at)
        for name, minutes in classes.items()
    }


class EndpointMonitor:
    """Reads one endpoint's minutes from Azure Monitor, from the minute before its first
    reading on.

    Args:
        client: an azure-monitor-querymetrics ``MetricsClient`` of the endpoint's region.
        resource_id: the endpoint's Azure resource id.
        endpoint_name: for messages.
    """

    def __init__(self, client: Any, resource_id: str, endpoint_name: str) -> None:
        self.client, self.resource_id, self.endpoint_name = client, resource_id, endpoint_name
        self.origin: float | None = None

    def read(self) -> dict[str, DeploymentStats]:
        """Every deployment with answers since the origin.

        Raises:
            EndpointError: Azure Monitor refused (no permission: the Monitoring Reader role) or
                has no such metric for the endpoint.
        """
        now = time.time()
        if self.origin is None:
            self.origin = math.floor(now / 60.0) * 60.0 - 60.0
        span = (datetime.fromtimestamp(self.origin, UTC), datetime.fromtimestamp(now, UTC))
        doing = f"reading the metrics of endpoint '{self.endpoint_name}' from Azure Monitor"
        query = {"resource_ids": [self.resource_id], "metric_namespace": NAMESPACE,
                 "timespan": span, "granularity": GRAIN, "max_results": MAX_SERIES}
        with azure_errors(EndpointError, doing):
            counts = self.client.query_resources(
                metric_names=[REQUESTS], aggregations=["Total"],
                filter="deployment eq '*' and statusCodeClass eq '*'", **query)
            latency = self.client.query_resources(
                metric_names=[LATENCY_P95], aggregations=["Average"],
                filter="deployment eq '*'", **query)
        try:
            return stats_of(counts, latency, now)
        except EndpointError as exc:
            raise EndpointError(f"{doing}: {exc}") from exc
