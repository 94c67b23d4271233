"""The contenders of the drift benchmark, each run in its own process (imports included).

``floor``: plain scipy on the same columns with the methods Evidently picks for this data
(normed Wasserstein for numeric, Jensen-Shannon for categorical), pandas in between: the least
any drift check has to do.
``preset``: Evidently's full DataDriftPreset on every row, its HTML rendered; its verdicts are
read with the project's typed helper.
``ours``: the drift check's library path (read, judge, Evidently's report on a sample, write).
``flow``: the drift-check flow itself against a Prefect server, with a registered champion
whose reference sample is the reference table.

Each prints its peak memory and per-column verdicts through ``benchmarks._measure.report``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from benchmarks._measure import report


def _spec(spec_path: str):
    from mlops.core.spec import load_spec

    return load_spec(spec_path)


def _kinds(spec) -> dict[str, str]:
    from mlops.drift.compute import drift_columns

    return {c.name: c.kind for c in drift_columns(spec)}


def _parquet(folder: str) -> str:
    return str(next(Path(folder).glob("*.parquet")))


def floor(spec_path: str, ref: str, cur: str, out: str) -> dict[str, Any]:
    import numpy as np
    import pyarrow.parquet as pq
    from scipy import stats
    from scipy.spatial import distance

    kinds = _kinds(_spec(spec_path))
    reference = pq.read_table(_parquet(ref), columns=list(kinds)).to_pandas()
    current = pq.read_table(_parquet(cur), columns=list(kinds)).to_pandas()
    verdicts = {}
    for column, kind in kinds.items():
        r, c = reference[column].dropna(), current[column].dropna()
        if kind == "num":
            score = stats.wasserstein_distance(r, c) / max(float(np.std(r)), 0.001)
            method = "wasserstein"
        else:
            keys = list(set(r.unique()) | set(c.unique()))
            rc, cc = r.value_counts(), c.value_counts()
            score = float(distance.jensenshannon(
                np.array([rc.get(k, 0) for k in keys]) / len(r),
                np.array([cc.get(k, 0) for k in keys]) / len(c),
            ))
            method = "jensenshannon"
        verdicts[column] = [method, float(score), bool(score >= 0.1)]
    return verdicts


def preset(spec_path: str, ref: str, cur: str, out: str) -> dict[str, Any]:
    import pyarrow.parquet as pq
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    from mlops.drift.report import read_evidently_drift

    kinds = _kinds(_spec(spec_path))
    reference = pq.read_table(_parquet(ref), columns=list(kinds)).to_pandas()
    current = pq.read_table(_parquet(cur), columns=list(kinds)).to_pandas()
    definition = DataDefinition(
        numerical_columns=[c for c, k in kinds.items() if k == "num"],
        categorical_columns=[c for c, k in kinds.items() if k == "cat"],
    )
    snapshot = Report([DataDriftPreset()], include_tests=True).run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    )
    Path(out).mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(Path(out) / "preset.html"))
    verdicts = read_evidently_drift(snapshot)
    return {
        c.column: [c.method_label, c.score, c.drifted] for c in verdicts.columns.values()
    }


def ours(spec_path: str, ref: str, cur: str, out: str) -> dict[str, Any]:
    from mlops.drift.compute import compute_drift
    from mlops.drift.data import read_current
    from mlops.drift.report import evidently_report, result_json

    spec = _spec(spec_path)
    names = list(_kinds(spec))
    reference = read_current(ref, names).table
    current = read_current(cur, names).table
    result = compute_drift(reference, current, spec)
    html, _ = evidently_report(reference, current, result, rows=spec.drift.report_rows)
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / "report.html").write_text(html)
    (Path(out) / "drift.json").write_bytes(result_json(result, {}))
    return {c.column: [c.method, c.score, c.drifted] for c in result.columns}


def flow(spec_path: str, ref: str, cur: str, out: str) -> dict[str, Any]:
    import json

    from flows.drift_check import drift_check

    result = drift_check(spec_path=spec_path, data_url=cur, retrain=False)
    saved = json.loads((Path(result["report_url"]).parent / "drift.json").read_text())
    return {c["column"]: [c["method"], c["score"], c["drifted"]] for c in saved["columns"]}


STEPS = {"floor": floor, "preset": preset, "ours": ours, "flow": flow}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=sorted(STEPS))
    parser.add_argument("--spec", required=True)
    parser.add_argument("--ref", required=True)
    parser.add_argument("--cur", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    verdicts = STEPS[args.step](args.spec, args.ref, args.cur, args.out)
    report(verdicts=verdicts)


if __name__ == "__main__":
    main()
