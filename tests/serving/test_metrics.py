"""``GET /metrics``: per-deployment counters and latency histograms in the Prometheus format."""

from __future__ import annotations

import asyncio

import httpx
import numpy as np
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from mlops.endpoint.metrics import DeploymentStats, parse_metrics
from mlops.endpoint.payloads import frame_to_request
from serving.config import EndpointConfig
from serving.errors import ScoringInputError
from serving.metrics import BUCKETS_S, METRICS_OFF, DeploymentMetrics, Metrics
from serving.scoring import Scored
from serving.server import ScoringApp
from serving.state import READY, Deployment, DeploymentRecord
from tests.serving._models import FEATURES
from tests.serving.conftest import ADMIN_KEY, SCORING_KEY


def test_a_latency_on_a_bucket_bound_counts_in_that_bucket():
    m = DeploymentMetrics()
    m.observe(200, BUCKETS_S[0], 1)  # Prometheus' `le` is inclusive
    m.observe(200, np.nextafter(BUCKETS_S[0], 1.0), 1)
    m.observe(200, 99.0, 1)
    assert m.buckets[0] == 1 and m.buckets[1] == 1 and m.buckets[-1] == 1


@pytest.mark.parametrize(("status", "index"), [(200, 0), (399, 0), (400, 1), (499, 1),
                                               (500, 2), (503, 2)])
def test_status_classes(status, index):
    m = DeploymentMetrics()
    m.observe(status, 0.0, 0)
    assert m.by_class == [1 if i == index else 0 for i in range(3)]


def test_render_is_prometheus_text_that_reads_back():
    metrics = Metrics("churn-endpoint")
    for seconds in (0.0005, 0.003, 0.003, 7.0):
        metrics.of("blue").observe(200, seconds, 2)
    metrics.of("green").observe(500, 0.05, 0)
    text = metrics.render().decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["mlops_request_duration_seconds"].type == "histogram"
    samples = {(s.name, s.labels.get("deployment"), s.labels.get("le"), s.labels.get("code")):
               s.value for f in families.values() for s in f.samples}
    assert samples[("mlops_requests_total", "blue", None, "2xx")] == 4
    assert samples[("mlops_requests_total", "green", None, "5xx")] == 1
    assert samples[("mlops_request_duration_seconds_bucket", "blue", "0.005", None)] == 3
    assert samples[("mlops_request_duration_seconds_bucket", "blue", "+Inf", None)] == 4
    assert samples[("mlops_rows_scored_total", "blue", None, None)] == 8
    read = parse_metrics(text)
    assert (read["blue"].requests, read["blue"].rows, read["green"].error_rate) == (4, 8, 1.0)


def test_deltas_and_p95_from_buckets():
    before = DeploymentStats({"2xx": 10, "5xx": 0}, ((0.01, 10), (0.1, 10), (float("inf"), 10)))
    after = DeploymentStats({"2xx": 28, "5xx": 2}, ((0.01, 10), (0.1, 30), (float("inf"), 30)))
    step = after.since(before)
    assert (step.requests, step.errors, step.error_rate) == (20, 2, 0.1)
    # rank 19 of 20, all 20 between 0.01 and 0.1: 0.01 + 0.09 * 19/20
    assert step.quantile(0.95) == pytest.approx(0.0955)
    assert DeploymentStats().quantile(0.95) is None


class _Fixed:
    """Scores two rows, or refuses them like a request that does not fit the model."""

    def __init__(self, refuse: bool = False) -> None:
        self.refuse = refuse

    def score_table(self, table, probabilities):
        if self.refuse:
            raise ScoringInputError(422, "missing required columns: ['x']")
        return Scored({}, np.array([1, 0]))


async def _call(app: ScoringApp, method: str, path: str, headers: list, body: bytes = b""
                ) -> tuple[int, bytes]:
    """One request through the ASGI app in process: its status and body."""
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    await app({"type": "http", "method": method, "path": path, "query_string": b"",
               "headers": headers}, receive, send)
    return sent[0]["status"], sent[1]["body"]


async def _score(app: ScoringApp, deployment: str) -> int:
    headers = [(b"authorization", b"Bearer k"), (b"azureml-model-deployment", deployment.encode())]
    return (await _call(app, "POST", "/score", headers, b'[{"a": 1}, {"a": 2}]'))[0]


async def _get(app: ScoringApp, path: str, key: bytes) -> tuple[int, bytes]:
    return await _call(app, "GET", path, [(b"authorization", b"Bearer " + key)])


def _two_deployments(app: ScoringApp) -> None:
    app.default.scoring_key, app.default.admin_key = b"k", b"a"
    for name, scorer in (("blue", _Fixed()), ("green", _Fixed(refuse=True))):
        record = DeploymentRecord("mem://x", "toy", "1")
        app.default.endpoint.deployments[name] = Deployment(name, record, scorer, READY)  # type: ignore[arg-type]


def test_each_answer_is_counted_on_its_deployment(tmp_path):
    app = ScoringApp(EndpointConfig(state_dir=tmp_path, collect=False))
    _two_deployments(app)
    assert [asyncio.run(_score(app, n)) for n in ("blue", "blue", "green")] == [200, 200, 422]
    blue, green = app.default.metrics.deployments["blue"], app.default.metrics.deployments["green"]
    assert (blue.by_class, blue.rows, sum(blue.buckets)) == ([2, 0, 0], 4, 2)
    assert (green.by_class, green.rows) == ([0, 1, 0], 0)


def test_metrics_are_on_unless_the_setting_turns_them_off(tmp_path, monkeypatch):
    monkeypatch.delenv("MLOPS_ENDPOINT_METRICS", raising=False)
    on = ScoringApp(EndpointConfig(state_dir=tmp_path, collect=False))
    _two_deployments(on)
    assert asyncio.run(_score(on, "blue")) == 200
    status, body = asyncio.run(_get(on, "/metrics", b"a"))
    assert status == 200 and parse_metrics(body.decode())["blue"].requests == 1

    monkeypatch.setenv("MLOPS_ENDPOINT_METRICS", "false")
    off = ScoringApp(EndpointConfig(state_dir=tmp_path, collect=False))
    _two_deployments(off)
    assert [asyncio.run(_score(off, n)) for n in ("blue", "green")] == [200, 422]
    assert not off.default.metrics.deployments  # nothing counted
    status, body = asyncio.run(_get(off, "/metrics", b"a"))
    assert status == 404 and orjson.loads(body)["error"] == METRICS_OFF
    assert "MLOPS_ENDPOINT_METRICS=false" in METRICS_OFF
    assert asyncio.run(_get(off, "/metrics", b"wrong"))[0] == 401  # still behind a key


@pytest.mark.service
def test_metrics_over_http_need_a_key_and_count_requests(blue_green, server, toys):
    with httpx.Client(base_url=server.url, timeout=30) as http:
        assert http.get("/metrics").status_code == 401
        before = parse_metrics(http.get("/metrics", headers={
            "Authorization": f"Bearer {SCORING_KEY}"}).text)
        body = orjson.dumps(frame_to_request(toys.frame[FEATURES].head(3)))
        for _ in range(3):
            http.post("/score", content=body, headers={
                "Authorization": f"Bearer {SCORING_KEY}", "azureml-model-deployment": "green"})
        response = http.get("/metrics", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    step = parse_metrics(response.text)["green"].since(before.get("green", DeploymentStats()))
    assert (step.requests, step.by_class["2xx"], step.rows) == (3, 3, 9)
    assert server.client.metrics()["green"].requests == step.requests + (
        before["green"].requests if "green" in before else 0)
