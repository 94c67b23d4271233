"""Live numbers of an endpoint's deployments, as the canary of a release reads them.

The local endpoint exposes its counters at ``GET /metrics`` (``serving.metrics``, Prometheus
text); `parse_metrics` turns that text into one `DeploymentStats` per deployment. Counters only
grow, so what a deployment did during a traffic step is the difference of two readings
(`DeploymentStats.since`), and its p95 latency is estimated from the histogram's buckets the way
Prometheus' ``histogram_quantile`` does it.

Azure Monitor (``mlops.endpoint.azure_monitor``) gives per-minute aggregates instead: a
`DeploymentStats` read from it carries its `Minute` series and the time it was read, and what
happened since an earlier reading is the whole minutes that began after it; its p95 is the
platform's per-minute p95, averaged over those minutes weighted by their requests.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from mlops.core.errors import EndpointError

_SAMPLE = re.compile(r"^(?P<name>[a-z_]+)\{(?P<labels>[^}]*)\} (?P<value>\S+)$")
_LABEL = re.compile(r'(\w+)="([^"]*)"')


@dataclass(frozen=True)
class Minute:
    """One minute of a deployment as Azure Monitor aggregates it: answers by status class and
    the platform's p95 latency in seconds (None: no latency reported for that minute)."""

    start: float  # epoch seconds
    by_class: dict[str, int]
    p95_s: float | None = None

    @property
    def requests(self) -> int:
        return sum(self.by_class.values())


@dataclass(frozen=True)
class DeploymentStats:
    """Requests by status class, cumulative latency buckets ``(upper bound s, count)``, rows;
    or, from a windowed source, the `minutes` it sums and when it was read (`read_at`, epoch
    seconds; None for counters)."""

    by_class: dict[str, int] = field(default_factory=dict)
    buckets: tuple[tuple[float, int], ...] = ()
    rows: int = 0
    mirrored: int = 0
    minutes: tuple[Minute, ...] = ()
    read_at: float | None = None

    @classmethod
    def of_minutes(cls, minutes: list[Minute], read_at: float) -> DeploymentStats:
        by_class: dict[str, int] = {}
        for minute in minutes:
            for code, count in minute.by_class.items():
                by_class[code] = by_class.get(code, 0) + count
        return cls(by_class, minutes=tuple(sorted(minutes, key=lambda m: m.start)),
                   read_at=read_at)

    @property
    def requests(self) -> int:
        return sum(self.by_class.values())

    @property
    def errors(self) -> int:
        """Answers in the 5xx class: the deployment's own failures, not the callers'."""
        return self.by_class.get("5xx", 0)

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def since(self, earlier: DeploymentStats) -> DeploymentStats:
        """What happened between `earlier` and this reading (counters reset by a restart of the
        endpoint count from zero). For a windowed reading: the minutes that began at or after
        `earlier` was read (every minute if `earlier` has no `read_at`)."""
        if self.read_at is not None:
            cut = earlier.read_at if earlier.read_at is not None else -math.inf
            return DeploymentStats.of_minutes([m for m in self.minutes if m.start >= cut],
                                              self.read_at)
        before = dict(earlier.buckets)
        if self.requests < earlier.requests:
            return self
        return DeploymentStats(
            {k: v - earlier.by_class.get(k, 0) for k, v in self.by_class.items()},
            tuple((le, n - before.get(le, 0)) for le, n in self.buckets),
            self.rows - earlier.rows, self.mirrored - earlier.mirrored,
        )

    def p95(self) -> float | None:
        """The p95 latency in seconds: from the histogram, or the platform's per-minute p95
        weighted by each minute's requests; None without requests."""
        if self.buckets or not self.minutes:
            return self.quantile(0.95)
        timed = [(m.requests, m.p95_s) for m in self.minutes if m.requests and m.p95_s is not None]
        weight = sum(n for n, _ in timed)
        return sum(n * p for n, p in timed) / weight if weight else None

    def quantile(self, q: float) -> float | None:
        """The `q` quantile of latency in seconds, interpolated inside its bucket; None without
        requests. A quantile in the open last bucket is that bucket's lower bound."""
        total = self.buckets[-1][1] if self.buckets else 0
        if total == 0:
            return None
        rank, lower, below = q * total, 0.0, 0
        for upper, count in self.buckets:
            if count >= rank:
                if math.isinf(upper):
                    return lower
                inside = count - below
                return lower + (upper - lower) * ((rank - below) / inside if inside else 1.0)
            lower, below = upper, count
        return lower


def _labels(text: str) -> dict[str, str]:
    return dict(_LABEL.findall(text))


def parse_metrics(text: str) -> dict[str, DeploymentStats]:
    """Per-deployment stats from the endpoint's ``/metrics`` text.

    Raises:
        EndpointError: a sample line that is not ``name{labels} value`` (the line is quoted).
    """
    classes: dict[str, dict[str, int]] = {}
    buckets: dict[str, list[tuple[float, int]]] = {}
    counters: dict[str, dict[str, int]] = {"rows": {}, "mirrored": {}}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        sample = _SAMPLE.match(line)
        if sample is None:
            raise EndpointError(f"unreadable metrics line: {line[:120]!r}")
        name, labels = sample["name"], _labels(sample["labels"])
        deployment, value = labels.get("deployment", ""), float(sample["value"])
        if name == "mlops_requests_total":
            classes.setdefault(deployment, {})[labels["code"]] = int(value)
        elif name == "mlops_request_duration_seconds_bucket":
            buckets.setdefault(deployment, []).append((float(labels["le"]), int(value)))
        elif name == "mlops_rows_scored_total":
            counters["rows"][deployment] = int(value)
        elif name == "mlops_mirrored_requests_total":
            counters["mirrored"][deployment] = int(value)
    return {
        name: DeploymentStats(
            by_class, tuple(sorted(buckets.get(name, []))),
            counters["rows"].get(name, 0), counters["mirrored"].get(name, 0),
        )
        for name, by_class in classes.items()
    }
