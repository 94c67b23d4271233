"""The file registry on a blob container (Azurite): a real shared registry for a small team.

Numbers are claimed with an exclusive create (adlfs's "xb" mode commits the blob with
If-None-Match: *), so two writers never share a version; the manifest is written last, so a
crashed writer leaves nothing visible.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import mlops.model.bundle
from mlops.core.errors import RegistryError
from mlops.registry.local import CLAIM_FILE, LocalRegistry
from serving.bundle import MANIFEST_FILE, MODEL_FILE, REFERENCE_FILE, load_bundle
from tests.azure.conftest import container_name
from tests.mlops.registry._fitted import fit_small, register_fitted

pytestmark = [pytest.mark.azurite, pytest.mark.service]


@pytest.fixture(scope="module")
def fitted():
    return fit_small()


def test_versions_aliases_and_loading_from_a_container(container, blobs, fitted):
    registry = LocalRegistry(f"abfs://{container}/registry")
    first, second = register_fitted(registry, fitted), register_fitted(registry, fitted)
    assert (first.version, second.version) == (1, 2)
    assert second.url == f"abfs://{container}/registry/m/2"
    assert registry.versions("m") == [1, 2]
    assert set(blobs.names("registry/m/2/")) == {
        f"registry/m/2/{name}" for name in (CLAIM_FILE, MODEL_FILE, REFERENCE_FILE, MANIFEST_FILE)
    }
    model, frame = fitted
    bundle = registry.load("m", 2)
    np.testing.assert_array_equal(bundle.model.predict(frame), model.predict(frame))
    # The endpoint loads the same URL with credentials from its own environment.
    assert load_bundle(second.url).manifest["model_sha256"] == bundle.manifest["model_sha256"]

    registry.set_alias("m", 1)
    registry.set_alias("m", 2)
    assert registry.aliases("m") == {"champion": 2}
    with pytest.raises(RegistryError, match="missing"):
        registry.set_alias("m", 9)


def test_a_tampered_model_blob_is_refused(container, blobs, fitted):
    registry = LocalRegistry(f"abfs://{container}/registry")
    register_fitted(registry, fitted)
    blobs.put("registry/m/1/model.skops", blobs.get("registry/m/1/model.skops") + b"x")
    with pytest.raises(RegistryError, match="does not match"):
        registry.load("m", 1)


def test_a_version_written_by_another_process_is_seen_at_once(container, fitted):
    """Each thread has its own filesystem object, like another process; no stale listings."""
    url = f"abfs://{container}/registry"
    here = LocalRegistry(url)
    register_fitted(here, fitted)
    assert here.versions("m") == [1]
    elsewhere = threading.Thread(target=lambda: register_fitted(LocalRegistry(url), fitted))
    elsewhere.start()
    elsewhere.join()
    assert here.versions("m") == [1, 2]
    assert register_fitted(here, fitted).version == 3


def test_concurrent_claims_never_share_a_number(container):
    """Eight writers claim at the same instant: they all see the same free number first."""
    url = f"abfs://{container}/registry"
    start = threading.Barrier(8)

    def claim(_: int) -> int:
        registry = LocalRegistry(url)
        start.wait()
        return registry._claim("m")

    with ThreadPoolExecutor(8) as pool:
        numbers = list(pool.map(claim, range(8)))
    assert sorted(numbers) == list(range(1, 9))


def test_concurrent_registrations_are_all_complete_and_distinct(container, fitted):
    url = f"abfs://{container}/registry"
    start = threading.Barrier(4)

    def register(_: int) -> int:
        registry = LocalRegistry(url)
        start.wait()
        return register_fitted(registry, fitted).version

    with ThreadPoolExecutor(4) as pool:
        versions = list(pool.map(register, range(4)))
    assert sorted(versions) == [1, 2, 3, 4]
    registry = LocalRegistry(url)
    assert registry.versions("m") == [1, 2, 3, 4]
    assert {registry.get("m", v).manifest["version"] for v in versions} == {1, 2, 3, 4}


def test_a_writer_that_crashes_mid_bundle_leaves_no_visible_version(
    container, blobs, fitted, monkeypatch
):
    registry = LocalRegistry(f"abfs://{container}/registry")
    register_fitted(registry, fitted)

    def crash_after_the_model(fs, root, model_bytes, manifest, reference, holdout=None,
                              fast_path=None):
        fs.pipe_file(f"{root}/{MODEL_FILE}", model_bytes)
        raise ConnectionError("writer died before the manifest")

    with monkeypatch.context() as patched:  # the registry imports it when it registers
        patched.setattr(mlops.model.bundle, "write_bundle", crash_after_the_model)
        with pytest.raises(ConnectionError):
            register_fitted(registry, fitted)

    left = blobs.names("registry/m/2/")
    assert left == [f"registry/m/2/{CLAIM_FILE}", f"registry/m/2/{MODEL_FILE}"]
    reader = LocalRegistry(f"abfs://{container}/registry")
    assert reader.versions("m") == [1]
    with pytest.raises(RegistryError, match="no version 2"):
        reader.get("m", 2)
    with pytest.raises(RegistryError, match="missing"):
        reader.set_alias("m", 2)
    assert register_fitted(registry, fitted).version == 3  # the crashed number is not reused
    assert reader.versions("m") == [1, 3]


def test_the_first_version_creates_the_container(blob_env, fitted):
    url = f"abfs://{container_name('new')}/registry"
    assert register_fitted(LocalRegistry(url), fitted).version == 1
    assert LocalRegistry(url).versions("m") == [1]
