"""A batch process scores from this machine's snapshot of the model's fast path: the same
output as a process that loads the model, without importing scikit-learn or skops, unless a
row must take the plain pipeline. A snapshot that cannot be read is replaced, not trusted.
The champion here is registered without a snapshot in its bundle (test_bundle_snapshot.py has
those), so the first process loads the model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlops.batch import fast_cache, run
from serving.fastpath import snapshot
from tests.mlops.batch._batch import (
    Champion,
    make_champion,
    score_here,
    score_in_a_new_process,
    scores,
    write_partitions,
)


@pytest.fixture(scope="module")
def champion(tmp_path_factory: pytest.TempPathFactory) -> Champion:
    return make_champion(tmp_path_factory.mktemp("champion"), fast_path=False)


def test_a_second_process_scores_from_the_snapshot_without_scikit_learn(
        champion, inputs, cache, tmp_path):
    folder, _ = inputs
    score_here(champion, folder, tmp_path / "loaded")  # loads the model, keeps the snapshot
    kept = list(cache.glob("*.npz"))
    assert [p.name.split("-")[0] for p in kept] == [champion.model.sha256]
    again = score_in_a_new_process(champion, folder, tmp_path / "restored")
    assert again == {"failed": 0, "imported": []}
    pd.testing.assert_frame_equal(scores(tmp_path / "restored"), scores(tmp_path / "loaded"))


def test_a_row_the_fast_path_declines_loads_the_model_and_gets_its_answer(
        champion, cache, tmp_path):
    folder = tmp_path / "in"
    frame = write_partitions(folder, parts=1, rows=2000)
    frame.loc[[5, 1500], "monthly_charges"] = [np.inf, -np.inf]  # refused by the pipeline
    frame.to_parquet(folder / "part-0.parquet", index=False)
    score_here(champion, folder, tmp_path / "loaded")
    assert list(cache.glob("*.npz"))
    again = score_in_a_new_process(champion, folder, tmp_path / "restored")
    assert again == {"failed": 2, "imported": ["sklearn", "skops"]}
    restored, loaded = scores(tmp_path / "restored"), scores(tmp_path / "loaded")
    pd.testing.assert_frame_equal(restored, loaded)
    assert restored["error"].notna().sum() == 2


def test_a_snapshot_that_cannot_be_read_is_replaced(champion, inputs, cache, tmp_path, caplog):
    folder, _ = inputs
    path = fast_cache.snapshot_path(champion.model.sha256)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a snapshot")
    score_here(champion, folder, tmp_path / "out")
    assert "cannot be used" in caplog.text
    assert run.scorer_for(champion.model, True, True).scorer.bundle.model is not None  # loaded
    snapshot.load(path.read_bytes())  # the model's own snapshot, kept in its place


def test_the_cache_can_be_turned_off(champion, inputs, tmp_path, monkeypatch):
    monkeypatch.setenv(fast_cache.CACHE_VARIABLE, "off")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(run, "_scorers", {})
    folder, _ = inputs
    score_here(champion, folder, tmp_path / "out")
    assert fast_cache.snapshot_path(champion.model.sha256) is None
    assert not (tmp_path / "xdg").exists()
