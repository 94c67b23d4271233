"""A batch process scores from this machine's snapshot of the model's fast path: the same
output as a process that loads the model, without importing scikit-learn or skops, unless a
row must take the plain pipeline. A snapshot that cannot be read is replaced, not trusted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from mlops.batch import fast_cache, run
from mlops.batch.partitions import plan_partitions
from serving.fastpath import snapshot
from tests.mlops.batch._batch import ROOT, plan_for, write_partitions

_SCORE = """
import json, sys
from mlops.batch.partitions import ModelRef, OutputPlan, plan_partitions
from mlops.batch.run import score_partition
args = json.loads(sys.argv[1])
plan = OutputPlan(args["out"], ModelRef(**args["model"]), ("customer_id",), ("region",), True,
                  1024, fast=True)
results = [score_partition(p, plan) for p in plan_partitions(args["input"])]
print(json.dumps({"failed": sum(r.failed_rows for r in results),
                  "imported": sorted(m for m in ("sklearn", "skops") if m in sys.modules)}))
"""


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv(fast_cache.CACHE_VARIABLE, str(folder))
    monkeypatch.setattr(run, "_scorers", {})  # a fresh process: no scorer loaded yet
    return folder


def _score_here(champion, folder: Path, out: Path) -> None:
    plan = plan_for(champion, str(out))
    for partition in plan_partitions(str(folder)):
        run.score_partition(partition, plan)


def _score_in_a_new_process(champion, folder: Path, out: Path) -> dict:
    args = {"out": str(out), "input": str(folder), "model": asdict(champion.model)}
    done = subprocess.run([sys.executable, "-c", _SCORE, json.dumps(args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _scores(out: Path) -> pd.DataFrame:
    frame = pq.read_table(out).to_pandas().drop(columns="scored_at")
    return frame.sort_values("customer_id", ignore_index=True)


def test_a_second_process_scores_from_the_snapshot_without_scikit_learn(
        champion, inputs, cache, tmp_path):
    folder, _ = inputs
    _score_here(champion, folder, tmp_path / "loaded")  # loads the model, keeps the snapshot
    kept = list(cache.glob("*.npz"))
    assert [p.name.split("-")[0] for p in kept] == [champion.model.sha256]
    again = _score_in_a_new_process(champion, folder, tmp_path / "restored")
    assert again == {"failed": 0, "imported": []}
    pd.testing.assert_frame_equal(_scores(tmp_path / "restored"), _scores(tmp_path / "loaded"))


def test_a_row_the_fast_path_declines_loads_the_model_and_gets_its_answer(
        champion, cache, tmp_path):
    folder = tmp_path / "in"
    frame = write_partitions(folder, parts=1, rows=2000)
    frame.loc[[5, 1500], "monthly_charges"] = [np.inf, -np.inf]  # refused by the pipeline
    frame.to_parquet(folder / "part-0.parquet", index=False)
    _score_here(champion, folder, tmp_path / "loaded")
    assert list(cache.glob("*.npz"))
    again = _score_in_a_new_process(champion, folder, tmp_path / "restored")
    assert again == {"failed": 2, "imported": ["sklearn", "skops"]}
    restored, loaded = _scores(tmp_path / "restored"), _scores(tmp_path / "loaded")
    pd.testing.assert_frame_equal(restored, loaded)
    assert restored["error"].notna().sum() == 2


def test_a_snapshot_that_cannot_be_read_is_replaced(champion, inputs, cache, tmp_path, caplog):
    folder, _ = inputs
    path = fast_cache.snapshot_path(champion.model.sha256)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a snapshot")
    _score_here(champion, folder, tmp_path / "out")
    assert "cannot be used" in caplog.text
    assert run.scorer_for(champion.model, True, True).scorer.bundle.model is not None  # loaded
    snapshot.load(path.read_bytes())  # the model's own snapshot, kept in its place


def test_the_cache_can_be_turned_off(champion, inputs, tmp_path, monkeypatch):
    monkeypatch.setenv(fast_cache.CACHE_VARIABLE, "off")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(run, "_scorers", {})
    folder, _ = inputs
    _score_here(champion, folder, tmp_path / "out")
    assert fast_cache.snapshot_path(champion.model.sha256) is None
    assert not (tmp_path / "xdg").exists()
