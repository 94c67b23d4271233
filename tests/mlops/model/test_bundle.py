"""mlops/model/bundle.py: the manifest is written last, so a crash leaves no loadable half."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import fsspec
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from mlops.model.bundle import build_manifest, dump_model, feature_dtypes, write_bundle
from mlops.registry.local import LocalRegistry
from serving.bundle import MANIFEST_FILE, MODEL_FILE, REFERENCE_FILE, load_bundle
from serving.model_file import BundleLoadError


@pytest.fixture(scope="module")
def parts():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=80), "b": rng.normal(size=80)})
    model_bytes = dump_model(LogisticRegression().fit(frame, frame.a > frame.b))
    manifest = build_manifest(
        model_name="m", version=1, model_bytes=model_bytes,
        features=feature_dtypes(frame, ["a", "b"]),
        lineage={"target": "y", "task": "classification"},
    )
    return model_bytes, manifest, frame


@pytest.mark.parametrize("crashing", [MODEL_FILE, REFERENCE_FILE])
def test_a_crash_before_the_last_file_leaves_no_manifest(tmp_path, parts, monkeypatch, crashing):
    """The manifest is what makes a version visible: written before the model or the
    reference sample, a crash would leave a version that lists but does not load."""
    model_bytes, manifest, frame = parts
    fs = fsspec.filesystem("file")
    real = fs.pipe_file

    def crash_on(path, data, **kwargs):
        if path.endswith(crashing):
            raise OSError(f"disk full writing {path}")
        return real(path, data, **kwargs)

    monkeypatch.setattr(fs, "pipe_file", crash_on)
    root = tmp_path / "m" / "1"
    with pytest.raises(OSError, match="disk full"):
        write_bundle(fs, str(root), model_bytes, manifest, frame)
    assert not (root / MANIFEST_FILE).exists()
    assert LocalRegistry(str(tmp_path)).versions("m") == []


def test_a_complete_bundle_loads(tmp_path, parts):
    model_bytes, manifest, frame = parts
    write_bundle(fsspec.filesystem("file"), str(tmp_path), model_bytes, manifest, frame)
    assert load_bundle(str(tmp_path)).feature_names == ["a", "b"]


def test_a_pipeline_outside_the_allow_list_is_refused_when_written():
    from sklearn.dummy import DummyClassifier

    with pytest.raises(BundleLoadError, match=r"sklearn.dummy.DummyClassifier"):
        dump_model(DummyClassifier().fit([[0], [1]], [0, 1]))


_SNAPSHOT_AT_REGISTRATION = """
import sys
from mlops.model.bundle import dump_model, fast_path_snapshot, feature_dtypes
from serving.fastpath import snapshot
from tests.serving._models import FEATURES, toy_frame, toy_pipeline
frame = toy_frame(300)
data = fast_path_snapshot("toy", dump_model(toy_pipeline(frame, 5)),
                          feature_dtypes(frame, FEATURES), "classification")
snapshot.load(data)
print("numba" in sys.modules)
"""


def test_the_snapshot_made_at_registration_does_not_import_numba():
    """Registration reads the snapshot back and walks its trees with numpy: a training run
    does not pay for the batch kernel (about a second)."""
    root = Path(__file__).resolve().parents[3]
    done = subprocess.run([sys.executable, "-c", _SNAPSHOT_AT_REGISTRATION], cwd=root,
                          capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, "PYTHONPATH": str(root)})
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "False"
