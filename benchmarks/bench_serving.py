"""Serving benchmark: the local endpoint against Azure ML's inference server and a bare handler.

``python -m benchmarks.bench_serving``. For each model (see `MODELS`: the issue's scaler +
HistGradientBoosting on 20 numeric features, and a churn-like pipeline with one-hot encoding on
24 features) all servers get the same bundle, one worker process each,
``OMP_NUM_THREADS=1``, the same request body (the split form), 1-row and 100-row requests at
concurrency 1 and 8, measured with wrk (a Python load generator if wrk is not installed).
Figures go to ``benchmarks/results/serving.md``.

- local endpoint: ``python -m serving`` with auth, weighted routing over two deployments
  (blue/green 50/50, same bundle) and inference collection on; the report says whether its
  deployments score through the fast path (``serving.fastpath``) or the plain pipeline;
- the same endpoint with its per-request counters off (``MLOPS_ENDPOINT_METRICS=false``), so
  what the counters cost is measured A/B in the same run;
- baseline 1: ``azmlinfsrv`` running ``benchmarks/azml_blog_score.py`` (json -> DataFrame ->
  predict -> json string), from ``.venv-azmlinfsrv``;
- baseline 2 (floor): ``benchmarks/bare_asgi.py`` under uvicorn: json -> one numpy array ->
  predict (a DataFrame over that array only where a ColumnTransformer picks columns by name).
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import orjson
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from benchmarks._measure import machine, stamp
from mlops.endpoint.local import LocalEndpointClient
from mlops.endpoint.payloads import frame_to_request
from mlops.model.bundle import dump_model, feature_dtypes
from mlops.registry.local import LocalRegistry
from tools.endpoint_process import start_endpoint

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / ".work" / "serving"
RESULTS = ROOT / "benchmarks" / "results" / "serving.md"
AZMLINFSRV = ROOT / ".venv-azmlinfsrv" / "bin" / "azmlinfsrv"
KEY, ADMIN_KEY = "bench-scoring-key", "bench-admin-key"
FLOATS = [f"reading_{i:02d}" for i in range(15)]
INTS = [f"count_{i}" for i in range(5)]
CATS = [f"segment_{i}" for i in range(4)]
NUMERIC = FLOATS + INTS
FEATURES = FLOATS + INTS + CATS
ROW_COUNTS = (1, 100)
CONCURRENCY = (1, 8)
SINGLE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


# --- the model -------------------------------------------------------------------------------


def bench_frame(rows: int = 5000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({name: rng.normal(size=rows) for name in FLOATS})
    for name in INTS:
        frame[name] = rng.integers(0, 50, rows).astype("int64")
    for name in CATS:
        frame[name] = pd.array(rng.choice(list("abcdefgh"), rows), dtype="str")
    frame.loc[rng.random(rows) < 0.03, FLOATS[0]] = np.nan
    signal = frame[FLOATS[0]].fillna(0) + frame[INTS[0]] / 25 + (frame[CATS[0]] == "a")
    frame["label"] = (signal + rng.normal(size=rows) > 1).astype("int64")
    return frame


def mixed_pipeline(frame: pd.DataFrame) -> Pipeline:
    """Like the churn spec's pipeline: imputing, scaling and one-hot encoding, 24 features."""
    pre = ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), NUMERIC),
        ("cat", make_pipeline(SimpleImputer(strategy="most_frequent"),
                              OneHotEncoder(handle_unknown="ignore", sparse_output=False)), CATS),
    ])
    model = HistGradientBoostingClassifier(max_iter=100, random_state=0)
    return Pipeline([("pre", pre), ("model", model)]).fit(frame[FEATURES], frame["label"])


def numeric_pipeline(frame: pd.DataFrame) -> Pipeline:
    """The issue's setup: a scaler and the classifier on 20 numeric features."""
    model = HistGradientBoostingClassifier(max_iter=100, random_state=0)
    return Pipeline([("scale", StandardScaler()), ("model", model)]).fit(
        frame[NUMERIC], frame["label"]
    )


@dataclass(frozen=True)
class BenchModel:
    title: str
    features: list[str]
    fit: Callable[[pd.DataFrame], Pipeline]


MODELS = {
    "numeric": BenchModel(
        "StandardScaler + HistGradientBoostingClassifier(max_iter=100), 20 numeric features "
        "(the setup issue 3 describes)", NUMERIC, numeric_pipeline,
    ),
    "mixed": BenchModel(
        "imputers + StandardScaler + one-hot + HistGradientBoostingClassifier(max_iter=100), "
        "24 features of which 4 categorical (shaped like configs/churn.yaml's pipeline)",
        FEATURES, mixed_pipeline,
    ),
}


def register_bench_model(frame: pd.DataFrame, key: str) -> str:
    model = MODELS[key]
    version = LocalRegistry(str(WORK / "registry")).register(
        f"bench-{key}", model_bytes=dump_model(model.fit(frame)),
        features=feature_dtypes(frame, model.features),
        lineage={"target": "label", "task": "classification"}, reference=frame.head(200),
    )
    return version.url


# --- the servers -----------------------------------------------------------------------------


def _free_port() -> int:
    import socket  # noqa: PLC0415

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_http(port: int, path: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", path)
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.2)
    proc.terminate()
    raise RuntimeError(f"server on {port} did not come up; see {log}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


@dataclass(frozen=True)
class Server:
    port: int
    headers: dict[str, str]
    note: str = ""  # said in the report under the model's table


@contextmanager
def local_endpoint(bundle_url: str, metrics: bool = True) -> Iterator[Server]:
    """Our endpoint; `metrics` False turns its per-request counters off (the A/B of their
    cost)."""
    state = WORK / ("endpoint-state" if metrics else "endpoint-state-no-metrics")
    shutil.rmtree(state, ignore_errors=True)
    port = _free_port()
    env = {**SINGLE_THREAD, "MLOPS_ENDPOINT_KEY": KEY, "MLOPS_ENDPOINT_ADMIN_KEY": ADMIN_KEY,
           "MLOPS_ENDPOINT_MODEL_ROOTS": json.dumps([str(WORK / "registry")]),
           "MLOPS_ENDPOINT_METRICS": str(metrics).lower()}
    proc = start_endpoint(state, port, env)
    try:
        with LocalEndpointClient(f"http://127.0.0.1:{port}", KEY, ADMIN_KEY, 60) as client:
            client.put_deployment("blue", bundle_url)
            client.put_deployment("green", bundle_url)
            client.set_traffic({"blue": 50, "green": 50})
            paths = {d["scoring"] for d in client.state()["deployments"].values()}
        if not metrics:
            yield Server(port, {"Authorization": f"Bearer {KEY}"})
            return
        yield Server(port, {"Authorization": f"Bearer {KEY}"},
                     f"The local endpoint's deployments scored through the {', '.join(paths)}"
                     + (" (serving/fastpath/: numpy steps compiled from the fitted pipeline,"
                        " checked at load to answer exactly as it does). That is why it can beat"
                        " the floor, which calls scikit-learn's own predict."
                        if any(p.startswith("fast") for p in paths) else "."))
    finally:
        _stop(proc)


@contextmanager
def entry_script_server(script: Path, model_dir: str, workers: int = 1,
                        app_root: Path = ROOT) -> Iterator[Server]:
    """azmlinfsrv on a free port running `script` with `model_dir` as AZUREML_MODEL_DIR."""
    port = _free_port()
    log = WORK / f"{script.parent.name}-{script.stem}-{workers}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **SINGLE_THREAD, "AML_APP_ROOT": str(app_root)}
    env.pop("PYTHONPATH", None)
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(AZMLINFSRV), "--entry_script", str(script), "--model_dir", model_dir,
             "--port", str(port), "--worker_count", str(workers)],
            stdout=out, stderr=subprocess.STDOUT, cwd=app_root, env=env,
        )
    try:
        _wait_http(port, "/", proc, log)
        yield Server(port, {})
    finally:
        _stop(proc)


@contextmanager
def azmlinfsrv(bundle_url: str) -> Iterator[Server]:
    with entry_script_server(ROOT / "benchmarks" / "azml_blog_score.py", bundle_url) as server:
        yield server


@contextmanager
def bare_handler(bundle_url: str) -> Iterator[Server]:
    port = _free_port()
    log = WORK / "bare.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "benchmarks.bare_asgi:app", "--host", "127.0.0.1",
             "--port", str(port), "--workers", "1", "--no-access-log", "--lifespan", "on"],
            stdout=out, stderr=subprocess.STDOUT, cwd=ROOT,
            env={**os.environ, **SINGLE_THREAD, "BENCH_BUNDLE": bundle_url},
        )
    try:
        _wait_http(port, "/health", proc, log)
        yield Server(port, {})
    finally:
        _stop(proc)


LOCAL, NO_METRICS = "local endpoint", "local endpoint, metrics off"
AZML, FLOOR = "baseline 1: azmlinfsrv + blog score.py", "baseline 2: bare ASGI handler"
TARGETS = {  # keys of this table name the servers in the results
    LOCAL: local_endpoint,
    NO_METRICS: partial(local_endpoint, metrics=False),
    AZML: azmlinfsrv,
    FLOOR: bare_handler,
}


# --- load generation ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Figures:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


Key = tuple[str, int, int]  # (server, rows per request, concurrency)
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def _latency(text: str, pct: str) -> float:
    match = re.search(rf"^\s*{pct}%\s+([\d.]+)(us|ms|s)\s*$", text, re.MULTILINE)
    if not match:
        raise RuntimeError(f"wrk printed no {pct}% latency:\n{text}")
    return float(match[1]) * _UNITS[match[2]]


def run_wrk(port: int, body: Path, headers: dict[str, str], connections: int,
            duration: float) -> Figures:
    script = WORK / "post.lua"
    lines = ['wrk.method = "POST"', f'wrk.body = io.open("{body}"):read("*a")',
             'wrk.headers["Content-Type"] = "application/json"']
    lines += [f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items()]
    script.write_text("\n".join(lines) + "\n")
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration:.0f}s", "--latency", "-s", str(script),
         f"http://127.0.0.1:{port}/score"],
        capture_output=True, text=True, check=True,
    ).stdout
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: .*?(\d+) timeout", out)
    errors = int(non_2xx[1]) if non_2xx else 0
    errors += int(socket_errors[1]) if socket_errors else 0
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])
    return Figures(rps, _latency(out, "50"), _latency(out, "99"), errors)


def run_python_load(port: int, body: Path, headers: dict[str, str], connections: int,
                    duration: float) -> Figures:
    """Keep-alive clients in threads; only used when wrk is missing (it is slower than wrk)."""
    payload = body.read_bytes()
    sent = {"Content-Type": "application/json", **headers}
    latencies: list[float] = []
    errors = [0]
    end = time.monotonic() + duration

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while time.monotonic() < end:
            start = time.perf_counter()
            conn.request("POST", "/score", payload, sent)
            response = conn.getresponse()
            response.read()
            latencies.append((time.perf_counter() - start) * 1000)
            errors[0] += response.status != 200

    threads = [threading.Thread(target=client) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ordered = np.sort(latencies)
    return Figures(len(ordered) / duration, float(np.percentile(ordered, 50)),
                   float(np.percentile(ordered, 99)), errors[0])


def measure(port: int, body: Path, headers: dict[str, str], connections: int,
            duration: float, warm_up: bool) -> Figures:
    load = run_wrk if shutil.which("wrk") else run_python_load
    if warm_up:
        load(port, body, headers, connections, 2.0)  # discarded
    return load(port, body, headers, connections, duration)


def median_figures(runs: list[Figures]) -> Figures:
    """Median of each figure over the rounds, errors summed: robust to a burst of other load."""
    return Figures(
        float(np.median([r.rps for r in runs])), float(np.median([r.p50_ms for r in runs])),
        float(np.median([r.p99_ms for r in runs])), sum(r.errors for r in runs),
    )


def run_all(bundle_url: str, bodies: dict[int, Path], duration: float,
            rounds: int) -> tuple[dict[Key, Figures], list[str]]:
    """All servers up at once; each cell measured round-robin, so the servers share
    whatever else the machine is doing instead of one of them getting a quiet minute.

    Returns:
        The figures, and the servers' notes for the report.
    """
    with ExitStack() as stack:
        servers = {name: stack.enter_context(start(bundle_url)) for name, start in TARGETS.items()}
        results = round_robin(servers, bodies, duration, rounds)
    return results, [server.note for server in servers.values() if server.note]


def round_robin(servers: dict[str, Server], bodies: dict[int, Path], duration: float,
                rounds: int) -> dict[Key, Figures]:
    """Every cell (rows, concurrency) measured on each server in turn, `rounds` times; the
    median of each figure per server and cell."""
    results: dict[Key, Figures] = {}
    for rows in ROW_COUNTS:
        for conc in CONCURRENCY:
            runs: dict[str, list[Figures]] = {name: [] for name in servers}
            for round_no in range(rounds):
                for name, server in servers.items():
                    runs[name].append(measure(server.port, bodies[rows], server.headers,
                                              conc, duration, round_no == 0))
            for name in servers:
                results[(name, rows, conc)] = median_figures(runs[name])
                logger.info("%s, %s rows, c=%s: %s", name, rows, conc,
                            results[(name, rows, conc)])
    return results


# --- report ----------------------------------------------------------------------------------



def _ratio(results: dict[Key, Figures], a: str, b: str, rows: int, conc: int) -> float:
    return results[(a, rows, conc)].rps / results[(b, rows, conc)].rps


def _met(values: list[float], at_least: float = -np.inf, at_most: float = np.inf) -> str:
    missed = [f"c={c}" for c, v in zip(CONCURRENCY, values, strict=False)
              if not at_least <= v <= at_most]
    return "yes" if not missed else f"no ({', '.join(missed)})"


def _target_lines(results: dict[Key, Figures]) -> list[str]:
    local, azml, floor = LOCAL, AZML, FLOOR
    lines = ["", "Against the targets (issues 3 and 14):", "",
             "| check | concurrency 1 | concurrency 8 | target | met |", "|---|---|---|---|---|"]
    for rows, need in ((1, 2.5), (100, 2.0)):
        ratios = [_ratio(results, local, azml, rows, c) for c in CONCURRENCY]
        lines.append(f"| throughput vs baseline 1, {rows}-row | {ratios[0]:.2f}x "
                     f"| {ratios[1]:.2f}x | >= {need}x | {_met(ratios, at_least=need)} |")
    for rows in ROW_COUNTS:
        ratios = [_ratio(results, local, floor, rows, c) for c in CONCURRENCY]
        lines.append(f"| throughput vs floor, {rows}-row | {ratios[0]:.0%} | {ratios[1]:.0%} "
                     f"| >= 85% | {_met(ratios, at_least=0.85)} |")
    for rows in ROW_COUNTS:
        p50 = results[(local, rows, 1)].p50_ms / results[(floor, rows, 1)].p50_ms
        lines.append(f"| p50 vs floor, {rows}-row | {p50:.2f}x | - | <= 1.3x "
                     f"| {_met([p50], at_most=1.3)} |")
    for rows in ROW_COUNTS:  # what the per-request counters cost: the same server without them
        ratios = [_ratio(results, local, NO_METRICS, rows, c) for c in CONCURRENCY]
        lines.append(f"| throughput, metrics on vs off, {rows}-row | {ratios[0]:.0%} "
                     f"| {ratios[1]:.0%} | >= 95% | {_met(ratios, at_least=0.95)} |")
    return lines


def _table(results: dict[Key, Figures]) -> list[str]:
    lines = ["| server | rows | concurrency | requests/s | p50 ms | p99 ms | errors |",
             "|---|---|---|---|---|---|---|"]
    for (target, rows, conc), fig in results.items():
        lines.append(f"| {target} | {rows} | {conc} | {fig.rps:.0f} | {fig.p50_ms:.2f} "
                     f"| {fig.p99_ms:.2f} | {fig.errors} |")
    return lines


def write_report(sections: dict[str, tuple[dict[Key, Figures], list[str]]], generator: str,
                 args: argparse.Namespace, load: tuple[float, float]) -> None:
    lines = [
        "# Serving benchmark", "",
        f"Measured {stamp()} on {machine()}.", "",
        f"Load generator: {generator}, loopback; each cell is the median of {args.rounds} runs "
        f"of {args.duration:.0f} s (after a 2 s warm-up), the servers measured in turn. "
        "One worker process per server, OMP_NUM_THREADS=1. Request body: the split form, "
        "identical for all. The local endpoint runs with auth, weighted routing "
        "(blue/green 50/50), inference collection and per-request metrics on; the same "
        "server with metrics off (MLOPS_ENDPOINT_METRICS=false) measures what the counters "
        "cost. The floor parses the JSON, builds "
        "one numpy array and calls predict (a float array for the numeric model; for the "
        "mixed one, whose ColumnTransformer picks columns by name, a DataFrame over it).",
        f"Load average (1 min) at start and end: {load[0]:.2f} / {load[1]:.2f} "
        "(other work on this machine skews the figures).",
    ]
    for key, (results, notes) in sections.items():
        lines += ["", f"## Model: {key}", "", MODELS[key].title + ".", "", *_table(results)]
        lines += ["", *notes] if notes else []
        lines += _target_lines(results)
    lines += ["", "Reproduce: `python -m benchmarks.bench_serving` (needs `.venv-azmlinfsrv`, "
              "see deployments/azureml/README.md; wrk from `apt-get install wrk`)."]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    logger.info("Wrote %s", RESULTS)


def _bodies(frame: pd.DataFrame, key: str) -> dict[int, Path]:
    bodies = {}
    for rows in ROW_COUNTS:
        bodies[rows] = WORK / f"body-{key}-{rows}.json"
        request = frame_to_request(frame[MODELS[key].features].head(rows))
        bodies[rows].write_bytes(orjson.dumps(request))
    return bodies


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="measurements per cell (median)")
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    args = parser.parse_args()
    if not AZMLINFSRV.exists():
        raise SystemExit(f"{AZMLINFSRV} is missing: see deployments/azureml/README.md")
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    frame = bench_frame()
    load_start = os.getloadavg()[0]
    sections = {}
    for key in args.models:
        bundle_url = register_bench_model(frame, key)
        sections[key] = run_all(bundle_url, _bodies(frame, key), args.duration, args.rounds)
    generator = "wrk 4.1 (1 thread)" if shutil.which("wrk") else "Python keep-alive threads"
    write_report(sections, generator, args, (load_start, os.getloadavg()[0]))


if __name__ == "__main__":
    main()
