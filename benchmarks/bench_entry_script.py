"""What the Azure entry script costs: our score.py against a sample-style one under azmlinfsrv.

``python -m benchmarks.bench_entry_script``. Azure ML's inference server (``azmlinfsrv`` from
``.venv-azmlinfsrv``, what managed online endpoints run) serves the same bundle twice at once:

- ours: ``deployments/azureml/score.py`` staged exactly as a deployment uploads it (score.py and
  ``serving/``), so requests go through the scoring core (column matching, dtype coercion, the
  fast path where it answers as the pipeline);
- sample: ``benchmarks/azml_blog_score.py``, written the way Azure's samples write it (skops
  load in ``init``; ``json.loads`` -> ``pd.DataFrame`` -> ``model.predict`` in ``run``).

One worker each, ``OMP_NUM_THREADS=1``, the same request body (the split form), 1-row and
100-row requests at concurrency 1 and 8; the two servers are measured in turn within each round
(interleaved), each cell the median over rounds. Figures go to
``benchmarks/results/entry_script.md`` with the machine, date and commit; the targets are ours
at least 5x the sample's requests per second at 1 row and 3x at 100 rows.

``--capacity`` instead measures ours alone at 1 and 2 workers and concurrency 1/2/4/8, printing
the table docs/azure.md sizes the deployment's request settings from (no results file).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from benchmarks._measure import machine, stamp
from benchmarks.bench_serving import (
    AZMLINFSRV,
    CONCURRENCY,
    MODELS,
    ROOT,
    ROW_COUNTS,
    Figures,
    Server,
    _bodies,
    bench_frame,
    entry_script_server,
    measure,
    register_bench_model,
    round_robin,
)
from benchmarks.bench_serving import WORK as SERVING_WORK
from mlops.azureml.shipping import stage_scoring_code

logger = logging.getLogger(__name__)

WORK = ROOT / "benchmarks" / ".work" / "entry_script"
RESULTS = ROOT / "benchmarks" / "results" / "entry_script.md"
SAMPLE_SCRIPT = ROOT / "benchmarks" / "azml_blog_score.py"
OURS, SAMPLE = "ours: deployments/azureml/score.py", "sample: benchmarks/azml_blog_score.py"
TARGETS = {1: 5.0, 100: 3.0}  # ours / sample, requests per second, by rows per request
Key = tuple[str, int, int]  # (script, rows per request, concurrency)


@contextmanager
def ours(model_dir: str, workers: int = 1) -> Iterator[Server]:
    code = WORK / f"code-{workers}"
    shutil.rmtree(code, ignore_errors=True)
    stage_scoring_code(code)  # exactly what a deployment uploads
    with entry_script_server(code / "score.py", model_dir, workers, app_root=code) as server:
        yield server


def compare(model_dir: str, bodies: dict[int, Path], duration: float,
            rounds: int) -> dict[Key, Figures]:
    """Both scripts up at once, measured in turn in every round of every cell."""
    with ExitStack() as stack:
        servers = {
            OURS: stack.enter_context(ours(model_dir)),
            SAMPLE: stack.enter_context(entry_script_server(SAMPLE_SCRIPT, model_dir)),
        }
        return round_robin(servers, bodies, duration, rounds)


def _table(results: dict[Key, Figures]) -> list[str]:
    lines = ["| script | rows | concurrency | requests/s | p50 ms | p99 ms | errors |",
             "|---|---|---|---|---|---|---|"]
    for (script, rows, conc), fig in results.items():
        lines.append(f"| {script} | {rows} | {conc} | {fig.rps:.0f} | {fig.p50_ms:.2f} "
                     f"| {fig.p99_ms:.2f} | {fig.errors} |")
    return lines


def target_lines(results: dict[Key, Figures]) -> list[str]:
    lines = ["", "| check | concurrency 1 | concurrency 8 | target | met |",
             "|---|---|---|---|---|"]
    for rows, need in TARGETS.items():
        ratios = [results[(OURS, rows, c)].rps / results[(SAMPLE, rows, c)].rps
                  for c in CONCURRENCY]
        missed = [f"c={c}" for c, r in zip(CONCURRENCY, ratios, strict=True) if r < need]
        met = "yes" if not missed else f"no ({', '.join(missed)})"
        lines.append(f"| requests/s, ours / sample, {rows}-row | {ratios[0]:.1f}x "
                     f"| {ratios[1]:.1f}x | >= {need:g}x | {met} |")
    return lines


def write_report(sections: dict[str, dict[Key, Figures]], args: argparse.Namespace,
                 load: tuple[float, float]) -> None:
    lines = [
        "# Entry script benchmark", "",
        f"Measured {stamp()} on {machine()}.", "",
        f"Azure ML's inference server (azmlinfsrv) runs both scripts on the same bundle, one "
        f"worker each, OMP_NUM_THREADS=1; the request body is the split form, the same for "
        f"both. Each cell is the median of {args.rounds} runs of {args.duration:.0f} s (after a "
        f"2 s warm-up), the two servers measured in turn. Ours runs without "
        f"MLOPS_ENDPOINT_AZUREML_COLLECT (no data collector outside Azure).",
        f"Load average (1 min) at start and end: {load[0]:.2f} / {load[1]:.2f}.",
    ]
    for key, results in sections.items():
        lines += ["", f"## Model: {key}", "", MODELS[key].title + ".", "", *_table(results),
                  *target_lines(results)]
    lines += ["", "Reproduce: `python -m benchmarks.bench_entry_script` (needs "
              "`.venv-azmlinfsrv`, see deployments/azureml/README.md; wrk from "
              "`apt-get install wrk`)."]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text("\n".join(lines) + "\n")
    logger.info("Wrote %s", RESULTS)


def capacity(model_dir: str, bodies: dict[int, Path], duration: float) -> None:
    """Ours alone: requests per second and p50/p99 by workers, rows and concurrency."""
    logger.info("workers | rows | concurrency | requests/s | p50 ms | p99 ms | errors")
    for workers in (1, 2):
        with ours(model_dir, workers) as server:
            for rows in ROW_COUNTS:
                for conc in (1, 2, 4, 8):
                    fig = measure(server.port, bodies[rows], {}, conc, duration, True)
                    logger.info("%d | %d | %d | %.0f | %.2f | %.2f | %d", workers, rows, conc,
                                fig.rps, fig.p50_ms, fig.p99_ms, fig.errors)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="measurements per cell (median)")
    parser.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    parser.add_argument("--capacity", action="store_true",
                        help="measure ours at 1 and 2 workers instead (printed, not written)")
    parser.add_argument("--no-report", action="store_true",
                        help="log the figures without writing the results file (a dry run)")
    args = parser.parse_args()
    if not AZMLINFSRV.exists():
        raise SystemExit(f"{AZMLINFSRV} is missing: see deployments/azureml/README.md")
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    SERVING_WORK.mkdir(parents=True, exist_ok=True)  # where the bench models and bodies go
    frame = bench_frame()
    load_start = os.getloadavg()[0]
    sections = {}
    for key in args.models:
        model_dir = register_bench_model(frame, key)
        bodies = _bodies(frame, key)
        if args.capacity:
            capacity(model_dir, bodies, args.duration)
            continue
        sections[key] = compare(model_dir, bodies, args.duration, args.rounds)
        logger.info("%s:\n%s", key, "\n".join(target_lines(sections[key])))
    if sections and not args.no_report:
        write_report(sections, args, (load_start, os.getloadavg()[0]))


if __name__ == "__main__":
    main()
