"""Rollback benchmark: ``mlops rollback`` to a warm deployment under steady load.

``python -m benchmarks.bench_rollback`` (``make bench-rollback``). A benchmark state folder holds
what a training run leaves after its second release: the registry with v1 (the previous
champion) and v2 (champion, its manifest naming v1 as ``previous_champion``), and a real local
endpoint with v1 warm on ``blue`` at 0% and v2 on ``green`` at 100%. A separate process
(``benchmarks.steady_load``) sends 1-row requests on four keep-alive connections throughout.
Each round, the same flip is done two ways, one after the other:

- ``mlops rollback --spec ...`` as a subprocess, the way a person runs it (Prefect server of
  the benchmark's own, as under ``mlops up``);
- baseline: one raw ``PUT /admin/traffic`` call, the floor of any rollback.

Measured: the time from the start of the command (or the call) to the endpoint's state showing
100% on ``blue`` (read every `WATCH_S`), the command's own wall time, and the failed requests
of the load process over the whole round. Between rounds the state goes back to v2 on green
(traffic and the ``champion`` alias). Figures go to ``benchmarks/results/rollback.md``;
targets (issue 14): under 2 s to 100%, no failed request.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson
import yaml

from benchmarks._measure import machine, prefect_server, stamp
from benchmarks.bench_serving import MODELS, _free_port, _stop, bench_frame
from mlops.endpoint.local import LocalEndpointClient
from mlops.endpoint.payloads import frame_to_request
from mlops.model.bundle import dump_model, feature_dtypes
from mlops.registry.local import LocalRegistry
from tools.endpoint_process import start_endpoint

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / ".work" / "rollback"
RESULTS = ROOT / "benchmarks" / "results" / "rollback.md"
MODEL = "bench-rollback"
WATCH_S = 0.005  # how often the endpoint's traffic is read while a flip is timed
TARGET_S = 2.0
COMMAND, RAW = "mlops rollback", "baseline: one PUT /admin/traffic"


@dataclass(frozen=True)
class Bench:
    """The endpoint under test and what a command needs to reach it."""

    client: LocalEndpointClient
    port: int
    spec_path: Path
    env: dict[str, str]  # the command's environment
    registry: LocalRegistry
    body: Path


@dataclass(frozen=True)
class Flip:
    """One timed flip: to 100% on blue, the command's wall time, the load around it."""

    how: str
    to_full_s: float
    wall_s: float
    requests: int
    failed: int
    failures: list[str]


def _register(state: Path, rows: int) -> tuple[str, str]:
    """v1 and v2 of the benchmark model (the serving benchmark's numeric pipeline), v2 naming
    v1 as the champion it replaced; returns their bundle URLs."""
    frame = bench_frame(rows)
    model = MODELS["numeric"]
    bundle = dump_model(model.fit(frame))
    registry = LocalRegistry(str(state / "registry"))
    urls = []
    for lineage in ({}, {"previous_champion": 1}):
        urls.append(registry.register(
            MODEL, model_bytes=bundle, features=feature_dtypes(frame, model.features),
            lineage={"target": "label", "task": "classification", **lineage},
            reference=frame.head(200),
        ).url)
    registry.set_alias(MODEL, 2)
    return urls[0], urls[1]


def _spec(work: Path) -> Path:
    """configs/churn.yaml naming the benchmark model (a warm flip reads no data)."""
    spec = yaml.safe_load((ROOT / "configs" / "churn.yaml").read_text())
    spec["registry"] = {"backend": "local", "model_name": MODEL}
    path = work / "bench-rollback.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@contextmanager
def bench_endpoint(work: Path, rows: int) -> Iterator[Bench]:
    """The state folder, a Prefect server and the endpoint: blue v1 at 0%, green v2 at 100%."""
    state = work / "state"
    shutil.rmtree(state, ignore_errors=True)
    state.mkdir(parents=True)
    v1, v2 = _register(state, rows)
    keys = {"MLOPS_ENDPOINT_KEY": secrets.token_urlsafe(24),
            "MLOPS_ENDPOINT_ADMIN_KEY": secrets.token_urlsafe(24)}
    with ExitStack() as stack:
        server, api_url = prefect_server(work / "prefect-server-home", work / "prefect.log")
        stack.callback(_stop, server)
        port = _free_port()
        stack.callback(_stop, start_endpoint(state, port, {**keys, "OMP_NUM_THREADS": "1"}))
        url = f"http://127.0.0.1:{port}"
        client = stack.enter_context(LocalEndpointClient(
            url, keys["MLOPS_ENDPOINT_KEY"], keys["MLOPS_ENDPOINT_ADMIN_KEY"], 60))
        client.put_deployment("blue", v1)
        client.put_deployment("green", v2)
        client.set_traffic({"green": 100})
        body = work / "body.json"
        frame = bench_frame(10)
        body.write_bytes(orjson.dumps(frame_to_request(frame[MODELS["numeric"].features].head(1))))
        env = {**keys, "MLOPS_STATE_DIR": str(state), "MLOPS_ENDPOINT_URL": url,
               "PREFECT_API_URL": api_url, "PREFECT_HOME": str(work / "prefect-home"),
               "PREFECT_LOGGING_LEVEL": "WARNING"}
        yield Bench(client, port, _spec(work), env, LocalRegistry(str(state / "registry")),
                    body)


@contextmanager
def steady_load(bench: Bench) -> Iterator[dict]:
    """The load process for the length of a block; the dict gets its counts at the end."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.steady_load", str(bench.port), str(bench.body)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
        env={**os.environ, "BENCH_SCORING_KEY": bench.env["MLOPS_ENDPOINT_KEY"]},
    )
    assert proc.stdout is not None and proc.stdin is not None
    if proc.stdout.readline().strip() != "started":
        raise RuntimeError("the load process did not start")
    result: dict = {}
    try:
        yield result
    finally:
        proc.stdin.close()
        result.update(json.loads(proc.stdout.readline()))
        proc.wait(30)


def _watch(client: LocalEndpointClient, started: float, seen: list[float]) -> None:
    """Read the traffic until blue has all of it; append the time since `started`."""
    deadline = started + 120
    while time.perf_counter() < deadline:
        if client.state()["traffic"].get("blue") == 100:
            seen.append(time.perf_counter() - started)
            return
        time.sleep(WATCH_S)


def _reset(bench: Bench) -> None:
    """Back to where the training run left it: v2 on green with all traffic, champion v2."""
    bench.client.set_traffic({"green": 100})
    bench.registry.set_alias(MODEL, 2)


def _rollback_command(bench: Bench) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tools.cli", "rollback", "--spec", str(bench.spec_path),
         "--reason", "benchmark"],
        env={**os.environ, **bench.env}, cwd=ROOT, capture_output=True, text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"mlops rollback failed ({done.returncode}):\n{done.stderr[-3000:]}")


def flip(bench: Bench, how: str, lead_s: float) -> Flip:
    """One timed flip under load, `lead_s` of steady load before and after it."""
    _reset(bench)
    watcher = LocalEndpointClient(bench.client.base_url, None, bench.env[
        "MLOPS_ENDPOINT_ADMIN_KEY"], 30)
    seen: list[float] = []
    with watcher, steady_load(bench) as load:
        time.sleep(lead_s)
        started = time.perf_counter()
        thread = threading.Thread(target=_watch, args=(watcher, started, seen))
        thread.start()
        if how == COMMAND:
            _rollback_command(bench)
        else:
            bench.client.set_traffic({"blue": 100})
        wall = time.perf_counter() - started
        thread.join()
        time.sleep(lead_s)
    if not seen:
        raise RuntimeError(f"{how}: blue never had all the traffic")
    if how == COMMAND:  # the command must have taken the warm path it is timed for
        last = bench.registry.releases(MODEL)[-1]
        if bench.registry.alias(MODEL) != 1 or not last.detail.startswith("traffic flip"):
            raise RuntimeError(f"mlops rollback did not flip to the warm v1: {last}")
    return Flip(how, seen[0], wall, load["requests"], load["failed"], load["failures"])


# --- report ----------------------------------------------------------------------------------


def _summary(flips: list[Flip], how: str) -> str:
    mine = [f for f in flips if f.how == how]
    to_full = [f.to_full_s for f in mine]
    return (f"| {how} | {np.median(to_full):.3f} | {max(to_full):.3f} "
            f"| {np.median([f.wall_s for f in mine]):.3f} | {sum(f.requests for f in mine)} "
            f"| {sum(f.failed for f in mine)} |")


def write_report(flips: list[Flip], out: Path, args: argparse.Namespace,
                 load: tuple[float, float]) -> None:
    command = [f for f in flips if f.how == COMMAND]
    slowest, failed = max(f.to_full_s for f in command), sum(f.failed for f in flips)
    lines = [
        "# Rollback benchmark", "",
        f"Measured {stamp()} on {machine()}.", "",
        f"Rounds: {args.rounds}. In each, the flip to the warm previous deployment by "
        "`mlops rollback --spec ...` (a subprocess, its own Prefect server as under `mlops up`) "
        "and by one raw `PUT /admin/traffic`, under steady load from a separate process "
        f"(4 keep-alive connections, 1-row requests, {args.lead:g} s of load before and after "
        f"each flip). Time to 100%: from the start of the command or call until the endpoint's "
        f"state shows all traffic on the previous deployment (read every {WATCH_S * 1000:g} ms)."
        f" Load average (1 min) at start and end: {load[0]:.2f} / {load[1]:.2f}.", "",
        "| how | time to 100% median s | max s | command wall median s | requests | failed |",
        "|---|---|---|---|---|---|",
        _summary(flips, COMMAND), _summary(flips, RAW), "",
        "Against the targets (issue 14):", "",
        "| check | seen | target | met |", "|---|---|---|---|",
        f"| slowest `mlops rollback` to 100% | {slowest:.3f} s | < {TARGET_S:g} s "
        f"| {'yes' if slowest < TARGET_S else 'no'} |",
        f"| failed requests, all rounds | {failed} | 0 | {'yes' if failed == 0 else 'no'} |",
    ]
    failures = [line for f in flips for line in f.failures]
    if failures:
        lines += ["", "First failures:", "", *[f"- `{line}`" for line in failures[:5]]]
    lines += ["", "Reproduce: `make bench-rollback` (`python -m benchmarks.bench_rollback`)."]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    logger.info("Wrote %s", out)


def main(argv: list[str] | None = None) -> list[Flip]:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7, help="flips of each kind")
    parser.add_argument("--lead", type=float, default=2.0,
                        help="seconds of steady load before and after each flip")
    parser.add_argument("--quick", action="store_true",
                        help="one round, short leads, a small model (checks that it works)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--work", type=Path, default=WORK)
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.lead = 1, 0.3
    args.work.mkdir(parents=True, exist_ok=True)
    load_start = os.getloadavg()[0]
    flips: list[Flip] = []
    with bench_endpoint(args.work, 500 if args.quick else 5000) as bench:
        for round_no in range(args.rounds):
            for how in (COMMAND, RAW):
                flips.append(flip(bench, how, args.lead))
                logger.info("round %d: %s", round_no + 1, flips[-1])
    write_report(flips, args.out, args, (load_start, os.getloadavg()[0]))
    return flips


if __name__ == "__main__":
    main()
