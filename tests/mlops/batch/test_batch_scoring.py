"""Batch scoring of partitions: the endpoint's answers, skipping, resuming, bad rows and files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from mlops.batch.manifest import build_manifest, read_manifest, write_manifest
from mlops.batch.partitions import plan_partitions
from mlops.batch.run import score_partition
from mlops.batch.writing import TEMP_FOLDER
from mlops.core.errors import DataLoadError
from tests.mlops.batch._batch import ROOT, plan_for, write_partitions


def _score_all(input_url: str, output_url: str, champion, **kwargs) -> list:
    plan = plan_for(champion, output_url, **kwargs)
    return [score_partition(p, plan) for p in plan_partitions(input_url)]


def _read(output: Path) -> pd.DataFrame:
    return pq.read_table(output).to_pandas().sort_values("customer_id", ignore_index=True)


@pytest.mark.service
def test_partitions_read_back_equal_the_endpoints_answers(champion, inputs, endpoint, tmp_path):
    folder, frame = inputs
    results = _score_all(str(folder), str(tmp_path / "out"), champion)
    assert [r.rows for r in results] == [2500, 2500, 2500]
    scored = _read(tmp_path / "out")
    frame = frame.sort_values("customer_id", ignore_index=True)
    body = json.loads(frame.to_json(orient="records", date_format="iso"))
    answer = endpoint.score({"input_data": body, "return_probabilities": True})
    assert scored["customer_id"].tolist() == frame["customer_id"].tolist()
    assert scored["region"].tolist() == frame["region"].tolist()
    assert scored["prediction"].tolist() == answer["predictions"]
    proba = np.asarray(answer["probabilities"])
    classes = answer["classes"]
    for j, label in enumerate(classes):
        np.testing.assert_array_equal(scored[f"probability_{label}"].to_numpy(), proba[:, j])
    assert scored["error"].isna().all()
    assert set(scored["model_version"]) == {champion.model.version}
    assert "churned" not in scored  # unlabelled input is the normal case


@pytest.mark.parametrize("fast", [True, False])
def test_fast_and_plain_paths_write_the_same_scores(champion, inputs, tmp_path, fast):
    folder, _ = inputs
    _score_all(str(folder), str(tmp_path / "fast"), champion, fast=True)
    _score_all(str(folder), str(tmp_path / "other"), champion, fast=fast)
    left, right = _read(tmp_path / "fast"), _read(tmp_path / "other")
    pd.testing.assert_frame_equal(left.drop(columns="scored_at"), right.drop(columns="scored_at"))


def test_a_rerun_skips_every_finished_partition(champion, inputs, tmp_path):
    folder, _ = inputs
    out = tmp_path / "out"
    _score_all(str(folder), str(out), champion)
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.parquet")}
    again = _score_all(str(folder), str(out), champion)
    assert all(r.skipped for r in again) and [r.rows for r in again] == [2500] * 3
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.parquet")} == stamps


def test_ids_and_probabilities_are_written_without_a_dictionary(champion, inputs, tmp_path):
    folder, _ = inputs
    _score_all(str(folder), str(tmp_path / "out"), champion)
    chunks = pq.ParquetFile(next((tmp_path / "out").glob("*.parquet"))).metadata.row_group(0)
    dictionary = {chunks.column(i).path_in_schema: chunks.column(i).has_dictionary_page
                  for i in range(chunks.num_columns)}
    plain = {"customer_id", "probability_0", "probability_1"}
    assert {name for name, has in dictionary.items() if not has} == plain
    assert {"prediction", "region", "model_name", "model_version", "scored_at"} <= set(
        dictionary)


def test_a_changed_input_or_another_batch_size_is_handled(champion, tmp_path):
    folder = tmp_path / "in"
    write_partitions(folder, parts=2, rows=500)
    out = tmp_path / "out"
    _score_all(str(folder), str(out), champion)
    write_partitions(folder, parts=1, rows=700, seed=4)  # part-0 rewritten, 700 rows
    again = _score_all(str(folder), str(out), champion)
    assert [(r.skipped, r.rows) for r in again] == [(False, 700), (True, 500)]
    assert len(_read(out)) == 1200


_KILLER = """
import os, signal, sys
from mlops.batch import writing
from mlops.batch.partitions import ModelRef, OutputPlan, plan_partitions
from mlops.batch.run import score_partition

model = ModelRef(*sys.argv[3:7])
plan = OutputPlan(sys.argv[2], model, ("customer_id",), ("region",), True, 1024)
write = writing.PartitionWriter.write
calls = []

def write_then_die(self, batch):
    write(self, batch)
    calls.append(1)
    if len(calls) == 5:  # the second partition's second batch is written: killed outright
        os.kill(os.getpid(), signal.SIGKILL)

writing.PartitionWriter.write = write_then_die
for partition in plan_partitions(sys.argv[1]):
    score_partition(partition, plan)
"""


def test_an_interrupted_run_resumes_without_duplicates(champion, tmp_path):
    folder = tmp_path / "in"
    frame = write_partitions(folder, parts=3, rows=2500)  # 3 batches of 1024 rows each
    out = tmp_path / "out"
    model = champion.model
    killed = subprocess.run(
        [sys.executable, "-c", _KILLER, str(folder), str(out), model.name, model.version,
         model.url, model.sha256], cwd=ROOT, capture_output=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-2000:]
    assert len(list(out.glob("*.parquet"))) == 1  # the first partition only
    assert len(list((out / TEMP_FOLDER).glob("*.tmp"))) == 1  # the half-written second
    assert len(pq.read_table(out)) == 2500  # a reader of the folder sees no half partition
    resumed = _score_all(str(folder), str(out), champion)
    assert [r.skipped for r in resumed] == [True, False, False]
    scored = _read(out)
    assert len(scored) == len(frame) and scored["customer_id"].is_unique
    assert not list((out / TEMP_FOLDER).glob("*.tmp"))


def test_rows_that_cannot_be_scored_get_a_null_prediction_and_a_reason(champion, tmp_path):
    folder = tmp_path / "in"
    frame = write_partitions(folder, parts=1, rows=3000)
    bad = frame.assign(tenure_months=frame["tenure_months"].astype(str))
    bad.loc[[7, 2000], "tenure_months"] = ["seven", "[]"]
    bad.to_parquet(folder / "part-0.parquet", index=False)
    (result,) = _score_all(str(folder), str(tmp_path / "out"), champion)
    assert (result.rows, result.failed_rows) == (3000, 2)
    scored = pq.read_table(tmp_path / "out").to_pandas()
    failed = scored[scored["error"].notna()]
    assert failed.index.tolist() == [7, 2000]
    assert failed["prediction"].isna().all() and failed["probability_1"].isna().all()
    assert "column 'tenure_months'" in failed["error"].iloc[0]
    # every other row gets the answer the clean data gets
    (folder / "part-0.parquet").unlink()
    frame.to_parquet(folder / "clean.parquet", index=False)
    _score_all(str(folder), str(tmp_path / "clean"), champion)
    clean = pq.read_table(tmp_path / "clean").to_pandas()
    good = scored["error"].isna()
    assert scored.loc[good, "prediction"].astype(int).tolist() == \
        clean.loc[good, "prediction"].tolist()
    np.testing.assert_array_equal(scored.loc[good, "probability_1"],
                                  clean.loc[good, "probability_1"])


def test_a_partition_without_a_needed_column_fails_naming_file_and_column(champion, tmp_path):
    folder = tmp_path / "in"
    frame = write_partitions(folder, parts=1, rows=100)
    frame.drop(columns=["age", "region"]).to_parquet(folder / "part-1.parquet", index=False)
    (folder / "part-2.parquet").write_bytes(b"PAR1 not a parquet file")
    plan = plan_for(champion, str(tmp_path / "out"))
    partitions = plan_partitions(str(folder))
    assert score_partition(partitions[0], plan).rows == 100
    with pytest.raises(DataLoadError, match=r"part-1\.parquet lacks columns \['age', 'region'\]"):
        score_partition(partitions[1], plan)
    with pytest.raises(DataLoadError, match=r"cannot read partition .*part-2\.parquet"):
        score_partition(partitions[2], plan)
    assert [p.name for p in (tmp_path / "out").glob("*.parquet")] == [partitions[0].output_name]
    manifest = build_manifest(str(folder), plan, partitions,
                              {partitions[0].input.url: score_partition(partitions[0], plan)},
                              {partitions[1].input.url: "lacks columns"})
    write_manifest(manifest)
    read = read_manifest(str(tmp_path / "out"))
    assert read["rows"] == 100 and [m["error"] for m in read["missing"]] == [
        "lacks columns", "not attempted"]


def test_csv_partitions_are_read_in_batches(champion, inputs, tmp_path):
    folder, frame = inputs
    (tmp_path / "csv").mkdir()
    frame.iloc[:3000].to_csv(tmp_path / "csv" / "a.csv.gz", index=False)
    (result,) = _score_all(str(tmp_path / "csv"), str(tmp_path / "out"), champion,
                           rows_per_batch=1024)
    assert result.rows == 3000 and result.failed_rows == 0
    assert pq.ParquetFile(next((tmp_path / "out").glob("*.parquet"))).num_row_groups == 3


@pytest.mark.parametrize("limit", [1, None])
def test_a_partitions_tree_walks_use_the_plans_openmp_threads(champion, inputs, tmp_path,
                                                                monkeypatch, limit):
    """The local runner's threads share the cores: each caps its own OpenMP threads (and only
    its own, while it scores); without a cap the process's default stays."""
    from sklearn.utils._openmp_helpers import _openmp_effective_n_threads

    from mlops.batch.scorer import BatchScorer

    seen: list[int] = []
    original = BatchScorer.score

    def recording(self, batch):
        seen.append(_openmp_effective_n_threads())
        return original(self, batch)

    monkeypatch.setattr(BatchScorer, "score", recording)
    default = _openmp_effective_n_threads()
    folder, _ = inputs
    plan = replace(plan_for(champion, str(tmp_path / "out")), predict_threads=limit)
    score_partition(plan_partitions(str(folder))[0], plan)
    assert seen and set(seen) == {limit or default}
    assert _openmp_effective_n_threads() == default


@pytest.mark.service
def test_batches_through_the_compiled_tree_kernel_equal_the_endpoints_answers(
        champion, inputs, endpoint, tmp_path, monkeypatch):
    """The endpoint (its own process, requests below the threshold) walks the trees with
    scikit-learn's predictors; the batch's 1,024-row batches take the compiled kernel here."""
    from serving.fastpath import compiled, trees

    walked: list[int] = []
    add_leaves = compiled.Tables.add_leaves

    def counted(tables, X, raw):
        walked.append(X.shape[0])
        add_leaves(tables, X, raw)

    monkeypatch.setattr(compiled.Tables, "add_leaves", counted)
    monkeypatch.setattr(trees, "COMPILED_MIN_ROWS", 1000)
    folder, frame = inputs
    _score_all(str(folder), str(tmp_path / "out"), champion, fast=True)
    assert 1024 in walked
    scored = _read(tmp_path / "out")
    frame = frame.sort_values("customer_id", ignore_index=True)
    body = json.loads(frame.to_json(orient="records", date_format="iso"))
    answer = endpoint.score({"input_data": body, "return_probabilities": True})
    assert scored["prediction"].tolist() == answer["predictions"]
    proba = np.asarray(answer["probabilities"])
    for j, label in enumerate(answer["classes"]):
        np.testing.assert_array_equal(scored[f"probability_{label}"].to_numpy(), proba[:, j])


def test_the_preload_loads_the_compiled_tree_kernel(champion, monkeypatch):
    from mlops.batch import run

    monkeypatch.setattr(run, "_scorers", {})  # a fresh process: no scorer loaded yet
    run.preload(champion.model, probabilities=True, fast=True).join()
    forest = run.scorer_for(champion.model, True, True).scorer.fast.estimator.forest
    assert "_tables" in vars(forest)


def test_a_worker_plugin_preloads_the_scorer_and_the_kernel(champion, monkeypatch):
    """What each worker of a temporary Dask cluster runs as it joins (here in process)."""
    import threading

    from mlops.batch import run
    from mlops.batch.cluster import ScorerPreload

    monkeypatch.setattr(run, "_scorers", {})  # a fresh worker: no scorer loaded yet
    ScorerPreload(champion.model, True, True).setup(worker=None)
    for thread in threading.enumerate():
        if thread.name in ("batch-worker-preload", "batch-preload"):
            thread.join()
    assert list(run._scorers) == [(champion.model.url, champion.model.sha256, True, True)]
    forest = run.scorer_for(champion.model, True, True).scorer.fast.estimator.forest
    assert "_tables" in vars(forest)


def test_every_module_the_forkserver_preloads_exists():
    """multiprocessing's forkserver skips a preload module it cannot import, silently: a
    misspelt name would only make every worker import it again."""
    import importlib.util

    from mlops.batch.cluster import FORKSERVER_PRELOAD

    assert [name for name in FORKSERVER_PRELOAD if importlib.util.find_spec(name) is None] == []
