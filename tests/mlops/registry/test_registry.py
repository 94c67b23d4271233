"""The file registry: numbered versions, nothing half-written visible, one champion."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mlops.core.errors import RegistryError
from mlops.model.bundle import dump_model, feature_dtypes
from mlops.registry.local import LocalRegistry
from serving.bundle import FAST_PATH_FILE, MANIFEST_FILE, MODEL_FILE, BundleLoadError, load_bundle
from tests.mlops.registry._fitted import fit_small, register_fitted


@pytest.fixture(scope="module")
def fitted():
    return fit_small()


def test_versions_are_assigned_in_order_and_load_back(tmp_path, fitted):
    registry = LocalRegistry(str(tmp_path / "reg"))
    first, second = register_fitted(registry, fitted), register_fitted(registry, fitted)
    assert (first.version, second.version) == (1, 2)
    assert registry.versions("m") == [1, 2]
    bundle = registry.load("m", 2)
    model, frame = fitted
    np.testing.assert_array_equal(bundle.model.predict(frame), model.predict(frame))
    assert bundle.feature_names == ["a", "b"]
    assert bundle.manifest["metrics"] == {"roc_auc": 0.9}
    assert len(bundle.manifest["model_sha256"]) == 64


def test_a_model_without_a_stored_fast_path_gets_no_snapshot(tmp_path, fitted):
    """The bundle carries a snapshot only of HistGradientBoosting (tests/mlops/batch has those);
    a logistic regression is registered as it is."""
    version = register_fitted(LocalRegistry(str(tmp_path / "reg")), fitted)
    assert "fast_path" not in version.manifest
    assert not (tmp_path / "reg" / "m" / "1" / FAST_PATH_FILE).exists()


def test_half_written_version_is_invisible_and_its_number_is_not_reused(tmp_path, fitted):
    registry = LocalRegistry(str(tmp_path / "reg"))
    register_fitted(registry, fitted)
    crashed = tmp_path / "reg" / "m" / "2"
    crashed.mkdir()
    (crashed / ".claim").write_bytes(b"claimed")
    (crashed / MODEL_FILE).write_bytes(b"partial")  # a crash before the manifest was written
    assert registry.versions("m") == [1]
    with pytest.raises(RegistryError, match="no version 2"):
        registry.get("m", 2)
    assert register_fitted(registry, fitted).version == 3


def test_tampered_model_is_refused(tmp_path, fitted):
    registry = LocalRegistry(str(tmp_path / "reg"))
    version = register_fitted(registry, fitted)
    path = tmp_path / "reg" / "m" / "1" / MODEL_FILE
    path.write_bytes(path.read_bytes() + b"x")
    with pytest.raises(RegistryError, match="does not match"):
        registry.load("m", version.version)


def test_untrusted_types_are_refused_even_with_a_matching_digest(tmp_path, fitted):
    import hashlib

    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    registry = LocalRegistry(str(tmp_path / "reg"))
    register_fitted(registry, fitted)
    hostile = sio.dumps(FunctionTransformer(func=json.loads))
    folder = tmp_path / "reg" / "m" / "1"
    (folder / MODEL_FILE).write_bytes(hostile)
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    manifest["model_sha256"] = hashlib.sha256(hostile).hexdigest()
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest))
    with pytest.raises(BundleLoadError, match="allow-list"):
        load_bundle(str(folder))


def test_champion_alias_points_at_one_existing_version(tmp_path, fitted):
    registry = LocalRegistry(str(tmp_path / "reg"))
    assert registry.alias("m") is None
    register_fitted(registry, fitted)
    register_fitted(registry, fitted)
    registry.set_alias("m", 1)
    registry.set_alias("m", 2)
    assert registry.alias("m") == 2
    assert registry.aliases("m") == {"champion": 2}
    with pytest.raises(RegistryError, match="missing"):
        registry.set_alias("m", 7)
    assert registry.alias("m") == 2


def test_bundle_url_holds_the_reference_sample(tmp_path, fitted):
    from serving.bundle import REFERENCE_FILE

    registry = LocalRegistry(str(tmp_path / "reg"))
    register_fitted(registry, fitted)
    reference = pd.read_parquet(f"{registry.bundle_url('m', 1)}/{REFERENCE_FILE}")
    pd.testing.assert_frame_equal(reference, fitted[1].head(20))
    with pytest.raises(RegistryError, match="no version 2"):
        registry.bundle_url("m", 2)


def test_a_version_keeps_its_trusted_holdout_with_its_dtypes(tmp_path, fitted):
    from mlops.model.bundle import HOLDOUT_FILE

    model, frame = fitted
    holdout = frame.tail(30).reset_index(drop=True).assign(
        y=pd.array([0, 1] * 15, dtype="int64"), region=pd.array(["n", "s"] * 15, dtype="string"))
    registry = LocalRegistry(str(tmp_path / "reg"))
    registry.register("m", model_bytes=dump_model(model),
                      features=feature_dtypes(frame, ["a", "b"]), lineage={"target": "y"},
                      reference=frame.head(20), holdout=holdout)
    register_fitted(registry, fitted)  # registered without one, as older versions were
    pd.testing.assert_frame_equal(registry.holdout("m", 1), holdout)
    assert (tmp_path / "reg" / "m" / "1" / HOLDOUT_FILE).is_file()
    assert registry.holdout("m", 2) is None
    with pytest.raises(RegistryError, match="no version 3"):
        registry.holdout("m", 3)
