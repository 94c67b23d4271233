"""Per-deployment request counters and latency histograms, in the Prometheus text format.

The counters are plain integers bumped on the event loop's thread (every request is counted
there, so no lock is needed), and a latency falls into its bucket by one `bisect` on a fixed
list: a request pays a few hundred nanoseconds for being counted. `render` writes the text a
Prometheus server scrapes from ``GET /metrics``; the canary of a release reads the same text
(``mlops.endpoint.metrics``). Counters never go down while the process lives, also when a
deployment is replaced or deleted: a reader works with differences between two readings.
``MLOPS_ENDPOINT_METRICS=false`` turns the counting off (``/metrics`` then answers 404 with
`METRICS_OFF`), which the serving benchmark uses to measure what the counters cost.
"""

from __future__ import annotations

from bisect import bisect_left

# Upper bounds of the latency buckets, in seconds (Prometheus' `le`, inclusive).
BUCKETS_S = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
CLASSES = ("2xx", "4xx", "5xx")
CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"
METRICS_OFF = (
    "per-request metrics are off on this endpoint (MLOPS_ENDPOINT_METRICS=false): there are no "
    "counters to read, so a release cannot watch a held traffic step here"
)


class DeploymentMetrics:
    """What one deployment has answered since the process started."""

    __slots__ = ("buckets", "by_class", "latency_sum", "mirror_dropped", "mirrored", "rows")

    def __init__(self) -> None:
        self.by_class = [0, 0, 0]  # 2xx (and 1xx/3xx, which /score never sends), 4xx, 5xx
        self.buckets = [0] * (len(BUCKETS_S) + 1)  # the last one is +Inf only
        self.latency_sum = 0.0
        self.rows = 0
        self.mirrored = 0
        self.mirror_dropped = 0

    def observe(self, status: int, seconds: float, rows: int) -> None:
        """Count one answered request: its status, how long it took, the rows it scored."""
        self.by_class[(status >= 400) + (status >= 500)] += 1
        self.buckets[bisect_left(BUCKETS_S, seconds)] += 1
        self.latency_sum += seconds
        self.rows += rows


class Metrics:
    """The counters of every deployment an endpoint has served, by deployment name."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.deployments: dict[str, DeploymentMetrics] = {}

    def of(self, deployment: str) -> DeploymentMetrics:
        found = self.deployments.get(deployment)
        if found is None:
            found = self.deployments[deployment] = DeploymentMetrics()
        return found

    def render(self) -> bytes:
        """Every counter in the Prometheus text exposition format (version 0.0.4)."""
        lines = [
            "# HELP mlops_requests_total Scoring requests answered, by deployment and status "
            "class.",
            "# TYPE mlops_requests_total counter",
        ]
        items = sorted(self.deployments.items())
        for name, m in items:
            for code, count in zip(CLASSES, m.by_class, strict=True):
                lines.append(f'mlops_requests_total{{{self._labels(name)},code="{code}"}} {count}')
        lines += [
            "# HELP mlops_request_duration_seconds Time from the request to its answer.",
            "# TYPE mlops_request_duration_seconds histogram",
        ]
        for name, m in items:
            labels, total = self._labels(name), 0
            for bound, count in zip([*BUCKETS_S, "+Inf"], m.buckets, strict=True):
                total += count
                lines.append(
                    f'mlops_request_duration_seconds_bucket{{{labels},le="{bound}"}} {total}'
                )
            lines.append(f"mlops_request_duration_seconds_sum{{{labels}}} {m.latency_sum!r}")
            lines.append(f"mlops_request_duration_seconds_count{{{labels}}} {total}")
        for metric, help_text, field in (
            ("mlops_rows_scored_total", "Rows scored in answered requests.", "rows"),
            ("mlops_mirrored_requests_total", "Live requests copied to this deployment as "
             "mirror traffic (their answers are discarded).", "mirrored"),
            ("mlops_mirror_dropped_total", "Mirror copies dropped because too many waited for "
             "this deployment.", "mirror_dropped"),
        ):
            lines += [f"# HELP {metric} {help_text}", f"# TYPE {metric} counter"]
            lines += [f"{metric}{{{self._labels(n)}}} {getattr(m, field)}" for n, m in items]
        return ("\n".join(lines) + "\n").encode()

    def _labels(self, deployment: str) -> str:
        # names are checked on creation (letters, digits, '-'), so nothing needs escaping
        return f'endpoint="{self.endpoint}",deployment="{deployment}"'
