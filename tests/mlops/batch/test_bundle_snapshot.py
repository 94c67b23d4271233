"""A registered bundle carries a snapshot of its model's fast path, so a batch process on a
machine that never loaded the model scores without scikit-learn or skops, with the plain
pipeline's answers. A snapshot whose digest is not the manifest's is refused; one written by
other code (another fast path or scikit-learn) is not read, and the model loads as before."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from mlops.batch import fast_cache, run
from serving.bundle import FAST_PATH_FILE, MANIFEST_FILE, BundleLoadError, load_bundle
from serving.fastpath import snapshot
from tests.mlops.batch._batch import Champion, score_here, score_in_a_new_process, scores


def _copy(champion: Champion, tmp_path: Path) -> tuple[Champion, Path]:
    """The champion's bundle copied to a folder of its own, to be changed."""
    folder = tmp_path / "bundle"
    shutil.copytree(champion.model.url, folder)
    return replace(champion, model=replace(champion.model, url=str(folder))), folder


def _edit_manifest(folder: Path, change) -> None:
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    change(manifest)
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest))


def test_the_registered_bundle_names_its_snapshot_with_its_digest(champion):
    folder = Path(champion.model.url)
    data = (folder / FAST_PATH_FILE).read_bytes()
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    assert manifest["fast_path"] == {"file": FAST_PATH_FILE,
                                     "sha256": hashlib.sha256(data).hexdigest(),
                                     "code": snapshot.code_key()}
    pipeline, classes = snapshot.load(data)
    assert pipeline.estimator.forest.per_iteration == 1 and classes == [0, 1]


def test_a_machine_that_never_loaded_the_model_scores_from_the_bundle(
        champion, inputs, cache, tmp_path):
    folder, frame = inputs
    assert not cache.exists()
    again = score_in_a_new_process(champion, folder, tmp_path / "restored")
    assert again == {"failed": 0, "imported": []}
    score_here(champion, folder, tmp_path / "plain", fast=False)  # the plain pipeline's answers
    restored = scores(tmp_path / "restored")
    assert len(restored) == len(frame)
    pd.testing.assert_frame_equal(restored, scores(tmp_path / "plain"))
    assert [p.name.split("-")[0] for p in cache.glob("*.npz")] == [champion.model.sha256]


def test_a_snapshot_that_is_not_the_manifests_is_refused(champion, cache, tmp_path):
    changed, folder = _copy(champion, tmp_path)
    path = folder / FAST_PATH_FILE
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(BundleLoadError, match=f"{FAST_PATH_FILE} sha256 .* does not match"):
        run.scorer_for(changed.model, True, True)
    path.unlink()
    with pytest.raises(BundleLoadError, match=f"{FAST_PATH_FILE} is missing"):
        run.scorer_for(changed.model, True, True)
    assert not cache.exists()


def test_a_snapshot_written_by_other_code_is_not_read(champion, inputs, cache, tmp_path):
    changed, folder = _copy(champion, tmp_path)
    _edit_manifest(folder, lambda m: m["fast_path"].update(code="0" * 16))
    (folder / FAST_PATH_FILE).write_bytes(b"never read")  # its digest no longer matches either
    assert not run.snapshot_available(changed.model)
    scorer = run.scorer_for(changed.model, True, True)
    assert scorer.scorer.bundle.model is not None and scorer.scorer.fast is not None  # loaded
    score_here(changed, inputs[0], tmp_path / "out")
    assert len(scores(tmp_path / "out")) == len(inputs[1])
    assert list(cache.glob("*.npz"))  # the full load kept this machine's snapshot


@pytest.mark.parametrize("entry", [
    {"file": "../model.skops", "sha256": "0" * 64, "code": "x"},
    {"file": FAST_PATH_FILE, "sha256": "not hex", "code": "x"},
    {"file": FAST_PATH_FILE, "sha256": "0" * 64},
    "fastpath.npz",
])
def test_a_manifest_whose_fast_path_entry_is_malformed_is_refused(champion, tmp_path, entry):
    _, folder = _copy(champion, tmp_path)
    _edit_manifest(folder, lambda m: m.update(fast_path=entry))
    with pytest.raises(BundleLoadError, match="'fast_path' must be"):
        load_bundle(str(folder))


def test_without_the_cache_the_bundles_snapshot_is_still_read(champion, monkeypatch):
    monkeypatch.setenv(fast_cache.CACHE_VARIABLE, "off")
    monkeypatch.setattr(run, "_scorers", {})
    assert run.scorer_for(champion.model, True, True).scorer.bundle.model is None


def test_without_numba_the_model_loads_rather_than_a_snapshot(champion, cache, monkeypatch):
    """A restored forest would walk a batch with numpy, slower than the loaded model's
    scikit-learn predictors."""
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "numba" else real(name, *a))
    monkeypatch.setattr(run, "_scorers", {})
    assert not run.snapshot_available(champion.model)
    scorer = run.scorer_for(champion.model, True, True).scorer
    assert scorer.bundle.model is not None  # loaded, not restored
    assert scorer.fast.estimator.forest.predictors is not None
