"""Paths that a real server cannot be pushed into from outside: a real fault, a full queue."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
import subprocess
import sys
import weakref
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
import pytest

from serving.bundle import load_bundle
from serving.collect import LIST_ROWS, InferenceCollector, Record
from serving.config import EndpointConfig
from serving.scoring import Scorer
from serving.server import RequestIds, ScoringApp
from serving.state import READY, Deployment, DeploymentRecord
from tests.conftest import ROOT


class _Broken:
    def score_table(self, table, probabilities):
        raise RuntimeError("disk on fire")


async def _call(app: ScoringApp, body: bytes) -> tuple[int, dict, bytes]:
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/score", "query_string": b"",
             "headers": [(b"authorization", b"Bearer k")]}
    await app(scope, receive, send)
    return sent[0]["status"], dict(sent[0]["headers"]), sent[1]["body"]


def test_a_server_fault_is_500_with_the_request_id_logged(tmp_path, caplog):
    app = ScoringApp(EndpointConfig(state_dir=tmp_path, collect=False))
    app.default.scoring_key = b"k"
    record = DeploymentRecord("mem://x", "toy", "1")
    app.default.endpoint.deployments["blue"] = Deployment("blue", record, _Broken(), READY)  # type: ignore[arg-type]
    app.default.endpoint.traffic = {"blue": 100}
    app.default.endpoint._reroute()
    with caplog.at_level(logging.ERROR, logger="serving.server"):
        status, headers, body = asyncio.run(_call(app, b'[{"a": 1}]'))
    request_id = headers[b"x-request-id"].decode()
    assert status == 500
    assert request_id in orjson.loads(body)["error"]
    assert "disk on fire" not in orjson.loads(body)["error"]
    assert any(request_id in r.getMessage() and r.exc_info for r in caplog.records)
    assert app.default.endpoint.deployments["blue"].inflight == 0


def _record(rows: int, request_id: str) -> Record:
    columns = {"x": np.arange(rows, dtype="float64")}
    return Record(columns, np.zeros(rows, dtype="int64"), "blue", "toy", "1", request_id,
                  datetime(2026, 1, 2, 3, 4, tzinfo=UTC))


def test_full_queue_drops_the_oldest_and_says_so(tmp_path, caplog):
    collector = InferenceCollector(str(tmp_path), "ep", flush_rows=1000, max_rows=10)
    for i in range(4):
        collector.add(_record(4, f"r{i}"))
    assert collector.stats()["dropped_rows"] == 8
    with caplog.at_level(logging.WARNING, logger="serving.collect"):
        collector.flush()
    assert "dropped 8 rows" in caplog.text
    files = list((tmp_path / "ep" / "date=2026-01-02").glob("part-*.parquet"))
    assert len(files) == 1
    written = pd.read_parquet(files[0])
    assert written["request_id"].tolist() == ["r2"] * 4 + ["r3"] * 4
    assert collector.stats()["written_rows"] == 8


def test_context_columns_never_overwrite_a_feature(tmp_path):
    collector = InferenceCollector(str(tmp_path), "ep")
    record = _record(2, "r")
    columns = {**record.columns, "prediction": np.array([5.0, 6.0])}
    collector.add(dataclasses.replace(record, columns=columns))
    collector.close()
    written = pd.read_parquet(next(tmp_path.glob("ep/date=*/part-*.parquet")))
    assert written["prediction"].tolist() == [5.0, 6.0]
    assert written["_prediction"].tolist() == [0, 0]


def test_corrupt_state_stops_the_start_with_the_file_named(tmp_path):
    (tmp_path / "endpoint").mkdir()
    (tmp_path / "endpoint" / "state.json").write_text('{"deployments": {"blue": {"x": 1}}}')
    app = ScoringApp(EndpointConfig(state_dir=tmp_path, collect=False, key="k", admin_key="a"))
    messages = iter([{"type": "lifespan.startup"}])
    sent: list[dict] = []

    async def receive() -> dict:
        return next(messages)

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(app({"type": "lifespan"}, receive, send))
    assert sent[0]["type"] == "lifespan.startup.failed"
    assert "state.json is not a valid endpoint state" in sent[0]["message"]


def test_state_is_saved_atomically_and_read_back(tmp_path):
    from serving.state import EndpointState, load_state, save_state

    state = EndpointState({"blue": DeploymentRecord("/m/1", "toy", "1")}, {"blue": 100})
    save_state(tmp_path, state)
    assert load_state(tmp_path) == state
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_collected_files_read_back_with_the_training_dtypes(tmp_path):
    from serving.coercion import coercer_for

    values = {
        "f": ("float64", [1.5, None]), "i": ("int64", [1, 2]), "ni": ("Int64", [1, None]),
        "b": ("boolean", [True, None]), "s": ("str", ["a", None]),
        "t": ("datetime64[ns]", ["2024-01-02T03:04:05", None]),
    }
    columns = {name: coercer_for(dtype)(raw) for name, (dtype, raw) in values.items()}
    collector = InferenceCollector(str(tmp_path), "ep")
    for request_id in ("r1", "r2"):
        collector.add(dataclasses.replace(_record(2, request_id), columns=columns))
    collector.close()
    written = pd.read_parquet(next(tmp_path.glob("ep/date=*/part-*.parquet")))
    assert {n: str(written[n].dtype) for n in values} == {n: d for n, (d, _) in values.items()}
    assert written["request_id"].tolist() == ["r1", "r1", "r2", "r2"]
    assert str(written["scored_at"].dtype) == "datetime64[us, UTC]"
    assert written["ni"].isna().tolist() == [False, True, False, True]


def test_generated_request_ids_are_unique_and_uuid_shaped():
    first, second = RequestIds(), RequestIds()  # two processes' worth
    ids = [first({}) for _ in range(1000)] + [second({}) for _ in range(1000)]
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    assert first({b"x-request-id": b"client-7"}) == "client-7"
    assert len(first({b"x-request-id": b"no spaces allowed"})) == 32


@pytest.mark.parametrize(
    "sizes",
    [(1, 3, LIST_ROWS), (LIST_ROWS + 1, LIST_ROWS + 20), (1, LIST_ROWS + 5, 3, LIST_ROWS)],
    ids=["small", "large", "both"],
)
def test_small_and_large_requests_join_into_one_file_with_training_dtypes(tmp_path, sizes):
    from serving.coercion import coercer_for

    dtypes = {"f": "float64", "i": "int64", "ni": "Int64", "b": "boolean", "s": "str",
              "t": "datetime64[ns]", "u": "bool"}
    rng = np.random.default_rng(0)

    def request(rows: int) -> dict[str, Any]:
        raw = {
            "f": [None if rng.random() < 0.2 else float(rng.normal()) for _ in range(rows)],
            "i": [int(v) for v in rng.integers(0, 9, rows)],
            "ni": [None if rng.random() < 0.2 else int(rng.integers(0, 9)) for _ in range(rows)],
            "b": [None if rng.random() < 0.2 else bool(rng.random() < 0.5) for _ in range(rows)],
            "s": [None if rng.random() < 0.2 else f"w{rng.integers(0, 5)}" for _ in range(rows)],
            "t": [None if rng.random() < 0.2 else f"2024-01-0{rng.integers(1, 9)}T01:02:03.5"
                  for _ in range(rows)],
            "u": [bool(v) for v in rng.random(rows) < 0.5],
        }
        return {name: coercer_for(dtypes[name])(values) for name, values in raw.items()}

    collector = InferenceCollector(str(tmp_path), "ep")
    sent = [request(rows) for rows in sizes]
    for i, columns in enumerate(sent):
        rows = len(columns["i"])
        collector.add(dataclasses.replace(_record(rows, f"r{i}"), columns=columns,
                                          predictions=np.arange(rows) % 2))
    collector.close()
    written = pd.read_parquet(next(tmp_path.glob("ep/date=*/part-*.parquet")))
    expected = pd.concat([pd.DataFrame(columns) for columns in sent], ignore_index=True)
    pd.testing.assert_frame_equal(written[list(dtypes)], expected)
    assert written["prediction"].tolist() == [r % 2 for c in sent for r in range(len(c["i"]))]


_FREED_SCRIPT = """
import asyncio, gc, sys, weakref
from pathlib import Path
from serving.model_roots import parse_root
from serving.state import Endpoint

state, v1, v2 = sys.argv[1:4]

async def replace():
    endpoint = Endpoint(Path(state), model_roots=[parse_root(Path(v1).parent)])
    await endpoint.put("blue", v1)
    first = endpoint.deployments["blue"].scorer
    first.cycle = first  # freed only by the cyclic collector, not by reference counts
    gone = weakref.ref(first)
    del first
    assert gc.get_freeze_count() > 0, "the loaded model was not frozen"
    await endpoint.put("blue", v2)
    return gone

alive = asyncio.run(replace())()
if alive is not None:
    print("alive, held by:", [type(r).__name__ for r in gc.get_referrers(alive)])
    sys.exit(1)
print("freed")
"""


def _replaced_scorer_is_freed(tmp_path: Path, toys: Any) -> bool:
    """Load a model, replace it, and say whether the first one was freed even though each load
    freezes the heap: in a fresh interpreter, as the endpoint runs, so that objects other tests
    left in this process (loggers, handlers, frozen generations) cannot hold it."""
    result = subprocess.run(
        [sys.executable, "-c", _FREED_SCRIPT, str(tmp_path), toys.v1.url, toys.v2.url],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )
    assert result.returncode in (0, 1), result.stderr[-2000:]
    return result.stdout.strip().endswith("freed")


def test_a_replaced_model_is_freed_despite_the_frozen_heap(tmp_path, toys):
    assert _replaced_scorer_is_freed(tmp_path, toys)


def test_a_replaced_model_is_freed_when_its_fast_path_was_declined(
    tmp_path, toys, monkeypatch, caplog
):
    """The log line saying why a model scores through the plain pipeline must not keep the
    model alive: captured records (here pytest's) live on after the deployment is replaced."""
    from serving import fastpath

    def declined(*args: Any, **kwargs: Any) -> None:
        raise fastpath.Unsupported("declined for this test")

    monkeypatch.setattr(fastpath, "compile_pipeline", declined)
    caplog.set_level(logging.INFO, logger="serving.scoring")
    scorer = Scorer(load_bundle(toys.v1.url))
    assert "declined for this test" in caplog.text
    gone = weakref.ref(scorer)
    del scorer
    gc.collect()
    assert gone() is None  # the captured record does not hold it


async def _ask(app: ScoringApp, method: str, path: str, key: bytes, body: Any = None) -> Any:
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": orjson.dumps(body), "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    query = b""
    if "?" in path:
        path, query = path.split("?", 1)[0], path.split("?", 1)[1].encode()
    await app({"type": "http", "method": method, "path": path, "query_string": query,
               "headers": [(b"authorization", b"Bearer " + key)]}, receive, send)
    assert sent[0]["status"] == 200, sent[1]["body"]
    return orjson.loads(sent[1]["body"])


@pytest.mark.parametrize(("setting", "scoring"), [
    ("false", "plain pipeline (off by setting MLOPS_ENDPOINT_FAST_PATH)"),
    ("true", "fast path"),
    (None, "fast path"),
])
def test_the_fast_path_setting_decides_how_deployments_score(tmp_path, toys, monkeypatch,
                                                             setting, scoring):
    from mlops.endpoint.payloads import frame_to_request
    from tests.serving._models import FEATURES

    if setting is None:
        monkeypatch.delenv("MLOPS_ENDPOINT_FAST_PATH", raising=False)
    else:
        monkeypatch.setenv("MLOPS_ENDPOINT_FAST_PATH", setting)
    config = EndpointConfig(state_dir=tmp_path, key="k", admin_key="a", collect=False,
                            omp_threads=None, model_roots=[str(Path(toys.v1.url).parent)])
    app = ScoringApp(config)
    rows = toys.frame[FEATURES].head(40)
    model = toys.bundle(toys.v1).model

    async def run() -> tuple[dict, dict]:
        await app.startup()
        try:
            await _ask(app, "PUT", "/admin/deployments/blue", b"a", {"model_url": toys.v1.url})
            await _ask(app, "PUT", "/admin/traffic", b"a", {"blue": 100})
            scored = await _ask(app, "POST", "/score?return_probabilities=true", b"k",
                                frame_to_request(rows))
            return scored, await _ask(app, "GET", "/admin/state", b"a")
        finally:
            await app.shutdown()

    scored, state = asyncio.run(run())
    assert state["deployments"]["blue"]["scoring"] == scoring
    assert (app.default.endpoint.deployments["blue"].scorer.fast is None) == (setting == "false")
    assert scored["predictions"] == model.predict(rows).tolist()
    assert scored["probabilities"] == model.predict_proba(rows).tolist()
