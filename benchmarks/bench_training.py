"""Training benchmark: orchestration overhead, cached re-run, and scaling.

One command: ``python -m benchmarks.bench_training`` (``make bench``). In one run, on one
machine, it measures

- the whole Prefect flow on ``--rows`` generated rows against ``plain``, a script doing the same
  load, validate, fit, evaluate, register, deploy, smoke test and promote with no orchestration
  (target: flow <= 1.10x plain);
- the flow again with nothing changed (target: <= 0.15x the first run);
- time and peak memory of the flow at each ``--scaling`` size (target: peak memory <= 3x the
  in-memory size of the loaded table),

and writes the figures to ``benchmarks/results/training.md``. Each contender runs in a fresh
process (imports included in its time) against one Prefect server and one local endpoint that
are started first and not timed.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx

from benchmarks._measure import machine, run_measured, stamp
from mlops.datasets import write_churn
from mlops.settings import Settings
from mlops.stack import down, endpoint_up

logger = logging.getLogger("bench_training")
WORK = Path("benchmarks/.work/training")
RESULTS = Path("benchmarks/results/training.md")


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _data(rows: int) -> str:
    folder = WORK / "data" / f"churn-{rows}"
    if not (folder / ".done").exists():
        logger.info("Generating %d rows", rows)
        write_churn(str(folder), n_rows=rows, partitions=max(1, rows // 1_000_000), seed=1)
        (folder / ".done").touch()
    return str(folder)


def _prefect_server(home: Path) -> tuple[subprocess.Popen, str]:
    port = _free_port()
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    log = open(WORK / "prefect-server.log", "wb")  # noqa: SIM115 - lives as long as the server
    proc = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
         "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/api"
    for _ in range(240):
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError("Prefect server did not start; see prefect-server.log")


def _env(name: str, api_url: str, endpoint_url: str) -> dict[str, str]:
    state = WORK / "state" / name
    return {
        "MLOPS_STATE_DIR": str(state),
        "MLOPS_ENDPOINT_URL": endpoint_url,
        "PREFECT_API_URL": api_url,
        "PREFECT_HOME": str(state / "prefect"),
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2"),
    }


def _step(step: str, data: str, env: dict[str, str], label: str) -> dict:
    logger.info("Running %s", label)
    result = run_measured(["benchmarks.training_steps", step, "--data", data], env=env,
                          log=WORK / f"{label}.log")
    logger.info("%s: %.1f s, peak %.0f MB", label, result["wall_s"], result["peak_rss_bytes"] / 1e6)
    return result


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--scaling", default="100000,1000000,10000000")
    args = parser.parse_args()
    shutil.rmtree(WORK / "state", ignore_errors=True)
    WORK.mkdir(parents=True, exist_ok=True)
    server, api_url = _prefect_server(WORK / "prefect-server-home")
    # The endpoint and every contender share these keys through the environment.
    os.environ.setdefault("MLOPS_ENDPOINT_KEY", secrets.token_urlsafe(24))
    os.environ.setdefault("MLOPS_ENDPOINT_ADMIN_KEY", secrets.token_urlsafe(24))
    endpoint = Settings(state_dir=WORK / "state" / "endpoint",
                        endpoint_url=f"http://127.0.0.1:{_free_port()}")
    endpoint_up(endpoint)
    try:
        lines = _overhead(args.rows, api_url, endpoint.endpoint_url)
        lines += _scaling([int(n) for n in args.scaling.split(",")], api_url,
                          endpoint.endpoint_url)
    finally:
        down(endpoint)
        server.terminate()
    _write(lines, args)


def _overhead(rows: int, api_url: str, endpoint_url: str) -> list[str]:
    data = _data(rows)
    plain = _step("plain", data, _env("plain", api_url, endpoint_url), "plain")
    first = _step("flow", data, _env("flow", api_url, endpoint_url), "flow-first")
    cached = _step("flow", data, _env("flow", api_url, endpoint_url), "flow-cached")
    ratio, cached_ratio = first["wall_s"] / plain["wall_s"], cached["wall_s"] / first["wall_s"]
    return [
        f"## Orchestration overhead ({rows:,} rows)", "",
        "| run | wall time | peak RSS | ratio | target |", "|---|---|---|---|---|",
        f"| plain script (baseline) | {plain['wall_s']:.1f} s | {_gib(plain['peak_rss_bytes'])}"
        " | 1.00 | |",
        f"| flow, first run | {first['wall_s']:.1f} s | {_gib(first['peak_rss_bytes'])} | "
        f"{ratio:.2f}x plain | <= 1.10x {'met' if ratio <= 1.10 else 'NOT met'} |",
        f"| flow, re-run, nothing changed | {cached['wall_s']:.1f} s | "
        f"{_gib(cached['peak_rss_bytes'])} | {cached_ratio:.2f}x first | <= 0.15x "
        f"{'met' if cached_ratio <= 0.15 else 'NOT met'} |", "",
        f"Outcomes: plain {plain['result']['outcome']}, first {first['result']['outcome']}, "
        f"re-run {cached['result']['outcome']}.", "",
    ]


def _scaling(sizes: list[int], api_url: str, endpoint_url: str) -> list[str]:
    lines = [
        "## Scaling (flow, first run, fresh state)", "",
        "| rows | wall time | peak RSS | loaded table in memory | peak / table | target |",
        "|---|---|---|---|---|---|",
    ]
    for rows in sizes:
        data = _data(rows)
        table = _step("table", data, {}, f"table-{rows}")["table_bytes"]
        run = _step("flow", data, _env(f"scale-{rows}", api_url, endpoint_url), f"flow-{rows}")
        ratio = run["peak_rss_bytes"] / table
        lines.append(
            f"| {rows:,} | {run['wall_s']:.1f} s | {_gib(run['peak_rss_bytes'])} | {_gib(table)} "
            f"| {ratio:.1f}x | <= 3x {'met' if ratio <= 3 else 'NOT met'} |"
        )
    return [*lines, ""]


def _write(lines: list[str], args: argparse.Namespace) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    header = [
        "# Training benchmark", "",
        f"Measured {stamp()} on {machine()}.",
        f"Command: `python -m benchmarks.bench_training --rows {args.rows} "
        f"--scaling {args.scaling}`. Spec: configs/churn.yaml (HistGradientBoostingClassifier, "
        "time split). Wall time includes process start and imports.", "",
    ]
    RESULTS.write_text("\n".join(header + lines))
    logger.info("Wrote %s", RESULTS)


if __name__ == "__main__":
    main()
