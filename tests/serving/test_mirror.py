"""Mirror (shadow) traffic: Azure ML's rules for the mirror table, copies sent after the live
answer, bounded, counted and logged; on a real endpoint, copies at the configured share."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterator

import httpx
import numpy as np
import orjson
import pandas as pd
import pytest

from mlops.core.errors import EndpointError
from mlops.endpoint.metrics import DeploymentStats
from mlops.endpoint.payloads import frame_to_request
from serving.config import EndpointConfig
from serving.errors import ServingError
from serving.metrics import Metrics
from serving.mirror import Copy, Mirror
from serving.scoring import Scored
from serving.server import ScoringApp
from serving.state import LOADING, READY, Deployment, DeploymentRecord, Endpoint
from serving.traffic import MirrorTable
from tests.serving._models import FEATURES
from tests.serving.conftest import SCORING_KEY

# --- the mirror table's rules, on the endpoint's state -----------------------------------------


class _Scorer:
    """Answers two rows; `calls` records which deployment scored which request (its "a")."""

    def __init__(self, name: str, calls: list[tuple[str, int]]) -> None:
        self.name, self.calls = name, calls

    def score_table(self, table, probabilities):
        self.calls.append((self.name, table.column("a")[0]))
        return Scored({}, np.array([1, 0]))


def _endpoint(tmp_path, calls: list[tuple[str, int]] | None = None) -> Endpoint:
    """blue (all live traffic), green and red loaded, grey still loading."""
    endpoint = Endpoint(tmp_path)
    for name in ("blue", "green", "red", "grey"):
        endpoint.deployments[name] = Deployment(
            name, DeploymentRecord(f"mem://{name}", "toy", "1"),
            _Scorer(name, calls if calls is not None else []),  # type: ignore[arg-type]
            LOADING if name == "grey" else READY,
        )
    endpoint.set_traffic({"blue": 100})
    return endpoint


@pytest.mark.parametrize(("table", "problem"), [
    ({"green": 51}, "'green' must be a whole number from 0 to 50, got 51"),
    ({"green": -1}, "'green' must be a whole number from 0 to 50, got -1"),
    ({"green": 10.5}, "'green' must be a whole number from 0 to 50, got 10.5"),
    ({"green": True}, "'green' must be a whole number from 0 to 50, got True"),
    ({"purple": 10}, "unknown deployment 'purple'"),
    ({"blue": 10}, "deployment 'blue' has 100% of the live traffic; a deployment takes live or "
                   "mirror traffic, not both"),
    ({"green": 10, "red": 5}, "mirror traffic goes to one deployment only, got ['green', 'red']"),
    ({"grey": 10}, "deployment 'grey' is loading"),
    (["green", 10], 'expected an object like {"green": 10}'),
])
def test_a_mirror_table_against_azure_mls_rules_is_refused_and_nothing_changes(
    tmp_path, table, problem
):
    endpoint = _endpoint(tmp_path)
    endpoint.set_mirror_traffic({"red": 5})
    saved = (tmp_path / "state.json").read_text()
    with pytest.raises(ServingError) as refused:
        endpoint.set_mirror_traffic(table)
    assert refused.value.status == 422
    assert refused.value.message == f"invalid mirror traffic table: {problem}"
    assert endpoint.mirror.shares == {"red": 5}
    assert (tmp_path / "state.json").read_text() == saved


def test_the_limits_themselves_are_allowed_and_zero_shares_mean_off(tmp_path):
    endpoint = _endpoint(tmp_path)
    assert endpoint.set_mirror_traffic({"green": 50, "red": 0}) == {"green": 50}
    assert endpoint.set_mirror_traffic({"green": 0}) == {}
    assert endpoint.mirror.draw() is None


def test_the_mirror_table_is_saved_and_recalled(tmp_path):
    _endpoint(tmp_path).set_mirror_traffic({"green": 20})
    again = Endpoint(tmp_path)
    again.recall()
    assert again.describe()["mirror_traffic"] == {"green": 20}
    assert again.traffic == {"blue": 100, "green": 0, "red": 0, "grey": 0}


def test_live_traffic_takes_mirror_traffic_off_that_deployment_only(tmp_path):
    endpoint = _endpoint(tmp_path)
    endpoint.set_mirror_traffic({"green": 20})
    endpoint.set_traffic({"blue": 90, "red": 10})
    assert endpoint.mirror.shares == {"green": 20}
    endpoint.set_traffic({"blue": 90, "green": 10})
    assert endpoint.mirror.shares == {}
    again = Endpoint(tmp_path)
    again.recall()
    assert again.mirror.shares == {}


def test_a_mirrored_deployment_cannot_be_deleted(tmp_path):
    endpoint = _endpoint(tmp_path)
    endpoint.set_mirror_traffic({"green": 20})
    with pytest.raises(ServingError, match="'green' has 20% of the mirror traffic") as refused:
        asyncio.run(endpoint.delete("green"))
    assert refused.value.status == 409 and "green" in endpoint.deployments


def test_copies_are_drawn_at_the_share():
    table = MirrorTable({"green": 20}, rng=random.Random(7))
    drawn = [table.draw() for _ in range(10_000)]
    assert set(drawn) == {None, "green"}
    # binomial(10000, 0.2): mean 2000, sd 40; the bounds are 5 sd away
    assert 1800 <= drawn.count("green") <= 2200


# --- copies: after the live answer, bounded ---------------------------------------------------


def _app(tmp_path, calls: list[tuple[str, int]], share: int) -> ScoringApp:
    app = ScoringApp(EndpointConfig(state_dir=tmp_path, collect=False))
    app.default.scoring_key = b"k"
    app.default.endpoint = _endpoint(tmp_path, calls)
    app.default.mirror.endpoint = app.default.endpoint
    app.default.endpoint.set_mirror_traffic({"green": share})
    return app


async def _score(app: ScoringApp, events: list[tuple[str, int]], number: int,
                 header: bytes = b"") -> dict:
    """Request `number` through the app; `events` gets ("answered", number) once its body is
    out. Sending the body takes a little time, as writing to a socket may."""
    sent: list[dict] = []

    async def receive() -> dict:
        body = orjson.dumps([{"a": number}, {"a": number}])
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)
        if message["type"] == "http.response.body":
            await asyncio.sleep(0.01)
            events.append(("answered", number))

    headers = [(b"authorization", b"Bearer k")]
    if header:
        headers.append((b"azureml-model-deployment", header))
    await app({"type": "http", "method": "POST", "path": "/score", "query_string": b"",
               "headers": headers}, receive, send)
    return orjson.loads(sent[1]["body"])


async def _settle(app: ScoringApp) -> None:
    """Let the mirror task score what is queued."""
    for _ in range(200):
        await asyncio.sleep(0.01)
        hosted = app.default
        if hosted.mirror.stats()["waiting"] == 0 and not hosted.endpoint.deployments[
                "green"].inflight:
            return


def test_a_copy_is_scored_after_the_live_answer_is_sent_and_discarded(tmp_path):
    calls: list[tuple[str, int]] = []
    app = _app(tmp_path, calls, 50)

    async def run() -> list[dict]:
        answers = [await _score(app, calls, i) for i in range(20)]
        await _settle(app)
        return answers

    answers = asyncio.run(run())
    assert {a["deployment"] for a in answers} == {"blue"}
    copied = [i for name, i in calls if name == "green"]
    copies = len(copied)
    assert 0 < copies < 20  # 50%: P(0 or 20 of 20) is 2e-6
    # each copy is scored after its own request's answer went out
    assert all(calls.index(("green", i)) > calls.index(("answered", i)) for i in copied)
    green = app.default.metrics.deployments["green"]
    assert (green.mirrored, green.by_class, green.rows) == (copies, [copies, 0, 0], 2 * copies)
    assert sum(green.buckets) == copies


def test_requests_that_name_their_deployment_are_not_copied(tmp_path):
    calls: list[tuple[str, int]] = []
    app = _app(tmp_path, calls, 50)

    async def run() -> None:
        for i in range(20):
            await _score(app, calls, i, header=b"blue")
        await _settle(app)

    asyncio.run(run())
    assert not [c for c in calls if c[0] == "green"]
    assert "green" not in app.default.metrics.deployments


def test_copies_beyond_the_limit_are_dropped_and_counted(tmp_path):
    endpoint = _endpoint(tmp_path)
    metrics = Metrics("ep")
    scored: list[str] = []

    async def run() -> None:
        release = asyncio.Event()

        async def score_on(deployment, table, probabilities, request_id, mirrored):
            await release.wait()  # a shadow slower than the traffic it gets
            scored.append(request_id)
            return {"predictions": [1]}

        mirror = Mirror(endpoint, metrics, score_on, limit=2)
        for i in range(5):
            mirror.offer(Copy("green", _Rows(1), False, f"r{i}"))
        assert mirror.stats() == {"waiting": 2, "limit": 2}
        release.set()
        for _ in range(100):
            await asyncio.sleep(0.01)
            if len(scored) == 2:
                break
        mirror.close()

    asyncio.run(run())
    assert scored == ["r0", "r1"]
    green = metrics.deployments["green"]
    assert (green.mirror_dropped, green.mirrored, green.by_class) == (3, 2, [2, 0, 0])
    assert 'mlops_mirror_dropped_total{endpoint="ep",deployment="green"} 3' in \
        metrics.render().decode()


class _Rows:
    def __init__(self, n_rows: int) -> None:
        self.n_rows = n_rows


def test_a_failing_copy_is_the_deployments_5xx_and_a_logged_error(tmp_path, caplog):
    endpoint = _endpoint(tmp_path)
    metrics = Metrics("ep")

    async def score_on(deployment, table, probabilities, request_id, mirrored):
        return {"predictions": [slice(1)]}  # an answer that cannot be encoded

    asyncio.run(Mirror(endpoint, metrics, score_on, limit=2).score(
        Copy("green", _Rows(3), False, "r-broken")))
    green = metrics.deployments["green"]
    assert (green.by_class, green.mirrored, green.rows) == ([0, 0, 1], 1, 0)
    assert any("r-broken" in r.getMessage() and r.exc_info for r in caplog.records)


# --- on a real endpoint -------------------------------------------------------------------------


@pytest.fixture
def mirrored(blue_green, server) -> Iterator[None]:
    """blue live, green gets 20% of copies; mirror traffic off again afterwards."""
    server.client.set_mirror_traffic({"green": 20})
    try:
        yield
    finally:
        server.client.set_mirror_traffic({})


def _settled_metrics(server) -> dict[str, DeploymentStats]:
    """The counters once no copy waits or runs (copies are scored after their answers)."""
    last = None
    for _ in range(100):
        state = server.client.state()
        now = server.client.metrics()
        idle = state["mirror_copies"]["waiting"] == 0 and not \
            state["deployments"]["green"]["inflight"]
        if idle and last is not None and now == last:
            return now
        last = now
        time.sleep(0.1)
    raise AssertionError(f"mirror copies did not settle: {server.client.state()}")


@pytest.mark.service
def test_copies_arrive_at_the_share_and_answers_are_the_live_ones(
    mirrored, server, toys
):
    rows = toys.frame[FEATURES].head(3)
    body = orjson.dumps(frame_to_request(rows))
    expected = server.client.score(frame_to_request(rows), deployment="blue")["predictions"]
    before = _settled_metrics(server)
    n = 300
    with httpx.Client(base_url=server.url, timeout=30) as http:
        answers = [http.post("/score", content=body, headers={
            "Authorization": f"Bearer {SCORING_KEY}", "x-request-id": f"mirror-{i}"}).json()
            for i in range(n)]
        for _ in range(50):  # named requests are never copied
            http.post("/score", content=body, headers={
                "Authorization": f"Bearer {SCORING_KEY}", "azureml-model-deployment": "blue"})
    assert {(a["deployment"], a["model_version"]) for a in answers} == {("blue", "1")}
    assert all(a["predictions"] == expected for a in answers)
    after = _settled_metrics(server)
    empty = DeploymentStats()
    green = after["green"].since(before.get("green", empty))
    blue = after["blue"].since(before.get("blue", empty))
    assert blue.requests == n + 50 and blue.mirrored == 0
    # binomial(300, 0.2): mean 60, sd 6.9; the bounds are 5 sd away
    assert 25 <= green.mirrored <= 95
    assert (green.requests, green.by_class.get("2xx"), green.rows) == (
        green.mirrored, green.mirrored, 3 * green.mirrored)
    assert server.client.state()["mirror_traffic"] == {"green": 20}
    _copies_are_marked_in_the_inference_log(server, green.mirrored)


def _copies_are_marked_in_the_inference_log(server, copies: int) -> None:
    folder = server.state_dir / "inference" / "local-endpoint"
    found = pd.DataFrame({"mirrored": pd.Series(dtype=bool)})
    for _ in range(100):
        time.sleep(0.2)
        files = sorted(folder.glob("date=*/part-*.parquet"))
        if not files:
            continue
        table = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
        found = table[table["request_id"].str.startswith("mirror-")]
        if found["mirrored"].sum() == 3 * copies and len(found) == 3 * (300 + copies):
            break
    copied = found[found["mirrored"]]
    assert len(copied) == 3 * copies and set(copied["deployment"]) == {"green"}
    live = found[~found["mirrored"]]
    assert len(live) == 3 * 300 and set(live["deployment"]) == {"blue"}
    assert set(copied["request_id"]) <= set(live["request_id"])


@pytest.mark.service
def test_the_admin_api_refuses_a_bad_mirror_table_and_keeps_the_old_one(mirrored, server):
    with pytest.raises(EndpointError, match=r"answered 422: invalid mirror traffic table: "
                       r"'green' must be a whole number from 0 to 50, got 60"):
        server.client.set_mirror_traffic({"green": 60})
    with pytest.raises(EndpointError, match=r"'blue' has 100% of the live traffic"):
        server.client.set_mirror_traffic({"blue": 10})
    assert server.client.state()["mirror_traffic"] == {"green": 20}
    server.client.set_traffic({"blue": 50, "green": 50})
    assert server.client.state()["mirror_traffic"] == {}
