"""Azure Monitor's metrics data-plane API (``POST /subscriptions/{id}/metrics:getBatch`` on
``<region>.metrics.monitor.azure.com``) for the workspace's online endpoints.

The numbers follow what the endpoint serves: a steady load of `load_per_minute` requests is
split by the traffic table in force during each minute (as set through the SDK, timed with
`clock`), and each deployment answers with the 5xx share and p95 latency a test gives it
(`behave`). A minute is published `lag_s` after it ends, as Azure Monitor publishes late.
Request and answer shapes are those of the 2024-02-01 API (``MetricResultsResponse``).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from tests.azureml.standin.http import LOCATION, Reply, ServiceError, body_of, query

NAMESPACE = "Microsoft.MachineLearningServices/workspaces/onlineEndpoints"
API_VERSION = "2024-02-01"
# metric -> (unit, its dimensions, aggregations it has)
METRICS = {
    "RequestsPerMinute": ("Count", {"deployment", "statusCode", "statusCodeClass",
                                    "modelStatusCode"}, {"Average", "Total", "Count"}),
    "RequestLatency_P95": ("MilliSeconds", {"deployment"}, {"Average", "Minimum", "Maximum"}),
}


def _time(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def _stamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _filter(text: str, metric: str) -> list[str]:
    """The dimensions a ``dim eq '*' and ...`` filter splits by; others are refused."""
    dims = []
    for clause in text.split(" and "):
        name, _, value = clause.strip().partition(" eq ")
        if value != "'*'":
            raise ServiceError(400, "BadRequest", f"the stand-in splits only: {clause!r}")
        if name not in METRICS[metric][1]:
            raise ServiceError(400, "BadRequest", f"Metric {metric} has no dimension {name}")
        dims.append(name)
    return dims


class MonitorRoutes:
    """Mixed into Workspace: the metrics API and the load that feeds it."""

    load_per_minute = 600
    lag_s = 90.0

    def behave(self, endpoint: str, deployment: str, error_share: float = 0.0,
               p95_ms: float = 40.0, since: float | None = None) -> None:
        """From `since` (the clock's now) on, `deployment` answers that share with a 5xx and
        has that p95 latency."""
        self.behaviour.setdefault((endpoint, deployment), []).append(
            (self.clock() if since is None else since, error_share, p95_ms))

    def _traffic_set(self, endpoint: str, table: dict[str, int]) -> None:
        self.traffic_log.append((self.clock(), endpoint, dict(table)))

    def _share(self, endpoint: str, deployment: str, start: float, end: float) -> float:
        """The deployment's mean traffic share (0-1) over [start, end)."""
        changes = [(t, table.get(deployment, 0)) for t, ep, table in self.traffic_log
                   if ep == endpoint]
        total = 0.0
        for i, (t, share) in enumerate(changes):
            until = changes[i + 1][0] if i + 1 < len(changes) else math.inf
            total += share * max(0.0, min(until, end) - max(t, start))
        return total / 100.0 / (end - start)

    def _minute(self, endpoint: str, deployment: str, start: float) -> tuple[int, int, float]:
        """(2xx, 5xx, p95 ms) of one minute."""
        n = round(self.load_per_minute * self._share(endpoint, deployment, start, start + 60))
        rules = [r for r in self.behaviour.get((endpoint, deployment), []) if r[0] <= start]
        error_share, p95_ms = (rules[-1][1], rules[-1][2]) if rules else (0.0, 40.0)
        errors = round(n * error_share)
        return n - errors, errors, p95_ms

    def _add_monitor_routes(self) -> None:
        self.route("POST", r"/subscriptions/(?P<sub>[^/]+)/metrics:getBatch", self._get_batch)

    def _get_batch(self, request: Any, sub: str) -> Reply:
        params = query(request)
        if params.get("api-version") != API_VERSION:
            raise ServiceError(400, "BadRequest", f"api-version {params.get('api-version')}")
        if params.get("metricnamespace", "").lower() != NAMESPACE.lower():
            raise ServiceError(400, "BadRequest", f"namespace {params.get('metricnamespace')}")
        if params.get("interval") != "PT1M":
            raise ServiceError(400, "BadRequest", "these metrics have the time grain PT1M only")
        start, end = _time(params["starttime"]), _time(params["endtime"])
        if end <= start:
            raise ServiceError(400, "BadRequest", "endtime must be after starttime")
        names = params["metricnames"].split(",")
        aggregations = params.get("aggregation", "Average").split(",")
        values = []
        for resource_id in (body_of(request) or {}).get("resourceids", []):
            endpoint = resource_id.rstrip("/").split("/")[-1]
            known = self.endpoints.get(endpoint, {}).get("id", "")
            if known.lower() != resource_id.lower():
                raise ServiceError(404, "ResourceNotFound", f"resource {resource_id} not found")
            metrics = []
            for name in names:
                if name not in METRICS:
                    raise ServiceError(400, "BadRequest", f"Metric {name} not found in "
                                       f"namespace {NAMESPACE}")
                for aggregation in aggregations:
                    if aggregation not in METRICS[name][2]:
                        raise ServiceError(400, "BadRequest", f"{name} has no {aggregation}")
                dims = _filter(params.get("filter", ""), name) if params.get("filter") else []
                metrics.append(self._metric(resource_id, endpoint, name, dims, aggregations,
                                            start, end))
            values.append({"starttime": params["starttime"], "endtime": params["endtime"],
                           "interval": "PT1M", "namespace": NAMESPACE,
                           "resourceregion": LOCATION, "resourceid": resource_id,
                           "value": metrics})
        return Reply(200, {"values": values})

    def _metric(self, resource_id: str, endpoint: str, name: str, dims: list[str],
                aggregations: list[str], start: float, end: float) -> dict[str, Any]:
        """One metric's time series, one per deployment (and status class when split)."""
        first = math.floor(start / 60) * 60
        minutes = [first + 60 * i for i in range(math.ceil((end - first) / 60))]
        deployments = sorted({d for (ep, d) in self.deployments if ep == endpoint})
        series: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for deployment in deployments:
            for minute in minutes:
                ok, failed, p95 = self._minute(endpoint, deployment, minute)
                published = minute + 60 + self.lag_s <= end
                if name == "RequestLatency_P95":
                    parts = {"": p95 if ok + failed else None}
                else:
                    parts = {"2xx": ok, "5xx": failed} if "statusCodeClass" in dims \
                        else {"": ok + failed}
                for code, value in parts.items():
                    point: dict[str, Any] = {"timeStamp": _stamp(minute)}
                    if published and value:
                        point.update({a.lower(): float(value) for a in aggregations})
                    series.setdefault((deployment, code), []).append(point)
        timeseries = []
        for (deployment, code), data in series.items():
            if not any(len(p) > 1 for p in data):
                continue  # a dimension value without data in the timespan has no series
            meta = [{"name": {"value": "deployment", "localizedValue": "deployment"},
                     "value": deployment}] if "deployment" in dims else []
            if code:
                meta.append({"name": {"value": "statusCodeClass",
                                      "localizedValue": "statusCodeClass"}, "value": code})
            timeseries.append({"metadatavalues": meta, "data": data})
        return {"id": f"{resource_id}/providers/Microsoft.Insights/metrics/{name}",
                "type": "Microsoft.Insights/metrics",
                "name": {"value": name, "localizedValue": name},
                "displayDescription": name, "unit": METRICS[name][0], "errorCode": "Success",
                "timeseries": timeseries}

