"""The Azure ML registry backend, the real SDK over HTTP to the REST stand-in, bundles on
Azurite: the registry contract of DESIGN.md (versions, tags, one champion, digest-checked loads)
on Azure ML's model assets."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from azure.ai.ml.entities import Model
from azure.storage.blob import ContainerClient

from mlops.core.errors import RegistryError
from mlops.registry.azureml import AzureMLRegistry
from serving.bundle import MANIFEST_FILE, MODEL_FILE
from tests.azureml.conftest import client_of, registry_client_of
from tests.azureml.standin import REGISTRY

pytestmark = pytest.mark.azurite


@pytest.fixture
def registry(ml_client, tmp_path) -> AzureMLRegistry:
    return AzureMLRegistry(ml_client, tmp_path / "cache")


def _blob(workspace, azurite, name: str, version: str, file: str):
    """The stored blob of one file of a registered bundle."""
    uri = workspace.models[(name, version)]["properties"]["modelUri"]
    prefix = uri.split("/paths/", 1)[1].rstrip("/")
    container = ContainerClient.from_connection_string(azurite.connection_string,
                                                       workspace.container)
    return container, f"{prefix}/{file}"


def test_versions_are_numbered_by_the_registry_and_carry_tags_and_digests(
    registry, ml_client, workspace, toy
):
    first = toy.register(registry, metrics={"roc_auc": 0.8712345}, flow_run_id="run-1",
                         data_url="abfs://data/churn?sig=SECRET", spec_hash="abc",
                         data_asset="churn_features:3")
    second = toy.register(registry)
    assert (first.version, second.version) == (1, 2)
    assert first.url == "azureml:toy:1"
    assert registry.versions("toy") == [1, 2]

    asset = ml_client.models.get(name="toy", version="1")
    assert asset.type == "custom_model"
    assert asset.tags["metric.roc_auc"] == "0.871235"
    assert asset.tags["flow_run_id"] == "run-1" and asset.tags["task"] == "classification"
    assert asset.tags["data_url"] == "abfs://data/churn"  # a SAS token never reaches a tag
    assert asset.tags["data_asset"] == "churn_features:3"  # finding 10: the asset version
    assert "SECRET" not in json.dumps(workspace.models[("toy", "1")])
    assert asset.properties["mlops.model_sha256"] == first.manifest["model_sha256"]
    assert asset.properties["mlops.spec_hash"] == "abc"
    assert first.manifest["version"] == 1  # the manifest inside the bundle knows its version


def test_a_model_fitted_by_a_job_names_the_job(registry, ml_client, workspace, toy):
    """Finding 6: the job name is what studio links the model's lineage by."""
    toy.register(registry, training_job="train-churn-3f2a")
    toy.register(registry)  # fitted here: no job
    assert ml_client.models.get(name="toy", version="1").job_name == "train-churn-3f2a"
    assert workspace.models[("toy", "1")]["properties"]["jobName"] == "train-churn-3f2a"
    assert "jobName" not in workspace.models[("toy", "2")]["properties"]


def test_a_version_taken_meanwhile_is_skipped_not_overwritten(
    registry, workspace, toy, tmp_path
):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "weights.bin").write_bytes(b"someone else's model")
    toy.register(registry)
    other = client_of(workspace)
    workspace.before("PUT", r"/models/toy/versions/2$", lambda: other.models.create_or_update(
        Model(name="toy", version="2", path=str(foreign), type="custom_model")))
    third = toy.register(registry)
    assert third.version == 3 and third.manifest["version"] == 3
    assert workspace.models[("toy", "2")]["properties"]["modelUri"].endswith("/foreign")
    assert registry.versions("toy") == [1, 3]  # the foreign version is not one of ours
    with pytest.raises(RegistryError, match="not a bundle of this project"):
        registry.get("toy", 2)


def test_a_version_taken_meanwhile_in_an_azure_ml_registry_is_skipped(workspace, toy, tmp_path):
    """Finding 8: in a registry the SDK swallows the 409 of the upload reservation and falls
    back to a datastore upload, which a registry cannot do."""
    registry = AzureMLRegistry(registry_client_of(workspace), tmp_path / "cache",
                               registry_name=REGISTRY)
    assert toy.register(registry).version == 1
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "weights.bin").write_bytes(b"someone else's model")
    other = registry_client_of(workspace)
    workspace.before("PUT", r"/tempdatarefs/toy/versions/2$", lambda: other.models.create_or_update(
        Model(name="toy", version="2", path=str(foreign), type="custom_model")))
    third = toy.register(registry)
    assert third.url == f"azureml://registries/{REGISTRY}/models/toy/versions/3"
    assert workspace.registry_models[("toy", "2")]["properties"]["modelUri"].endswith("/foreign")
    assert registry.versions("toy") == [1, 3]
    assert str(registry.load("toy", 3).version) == "3"


def test_load_downloads_once_and_predicts_like_the_original(registry, workspace, toy):
    version = toy.register(registry)
    bundle = registry.load("toy", version.version)
    features = toy.frame[bundle.feature_names].head(20)
    np.testing.assert_array_equal(bundle.model.predict(features), toy.pipeline.predict(features))
    registry.get("toy", version.version)
    secrets = [p for m, p in workspace.requests if p.endswith("/listSecrets")]
    assert len(secrets) == 2  # one upload, one download: versions never change, it is kept


def test_a_tampered_download_is_refused(registry, workspace, azurite, toy, tmp_path):
    version = toy.register(registry)
    container, model = _blob(workspace, azurite, "toy", "1", MODEL_FILE)
    with container:
        data = container.download_blob(model).readall()
        container.upload_blob(model, data + b"x", overwrite=True)
        with pytest.raises(RegistryError, match="does not match the manifest"):
            registry.load("toy", version.version)

        _, manifest_blob = _blob(workspace, azurite, "toy", "1", MANIFEST_FILE)
        manifest = json.loads(container.download_blob(manifest_blob).readall())
        manifest["model_sha256"] = "0" * 64  # a manifest rewritten to match a swapped model
        container.upload_blob(manifest_blob, json.dumps(manifest), overwrite=True)
    shutil.rmtree(tmp_path / "cache")
    with pytest.raises(RegistryError, match="manifest's sha256"):
        registry.load("toy", version.version)


def test_missing_versions_and_refused_calls_are_registry_errors(registry, workspace, toy):
    with pytest.raises(RegistryError, match="no version 7"):
        registry.get("toy", 7)
    assert registry.versions("toy") == [] and registry.alias("toy") is None
    workspace.fail("PUT", r"/models/toy/versions/1$", 403, "AuthorizationFailed",
                   "The client does not have authorization to perform action")
    with pytest.raises(RegistryError, match=r"HTTP 403.*authorization.*roles"):
        toy.register(registry)
    assert registry.versions("toy") == []


def test_throttling_is_waited_out_as_the_service_asks(registry, workspace, toy):
    toy.register(registry)
    workspace.fail("GET", r"/models/toy/versions$", 429, "TooManyRequests",
                   "Rate limit exceeded", times=2,
                   headers={"Retry-After": "1", "retry-after-ms": "5"})
    assert registry.versions("toy") == [1]  # the SDK retried after the time it was given
    listed = [p for m, p in workspace.requests if (m, p) == ("GET", "/models/toy/versions")]
    assert len(listed) >= 3


def test_champion_is_a_tag_exactly_one_version_holds(registry, ml_client, workspace, toy):
    for _ in range(3):
        toy.register(registry)
    registry.set_alias("toy", 1)
    since = len(workspace.requests)
    registry.set_alias("toy", 3)
    holders = [v for v in (1, 2, 3)
               if "champion" in ml_client.models.get(name="toy", version=str(v)).tags]
    assert holders == [3] and registry.alias("toy") == 3
    puts = [p for m, p in workspace.requests[since:] if m == "PUT"]
    assert puts == ["/models/toy/versions/3", "/models/toy/versions/1"]  # new one, then old
    with pytest.raises(RegistryError, match="no version 9"):
        registry.set_alias("toy", 9)
    assert registry.alias("toy") == 3


def test_a_move_cut_short_still_leaves_one_champion(registry, ml_client, workspace, toy):
    for _ in range(2):
        toy.register(registry)
    registry.set_alias("toy", 1)
    workspace.fail("PUT", r"/models/toy/versions/1$", 503, "ServiceUnavailable",
                   "The service is unavailable", times=50)  # more than the SDK retries
    with pytest.raises(RegistryError, match="HTTP 503"):
        registry.set_alias("toy", 2)  # tagged v2, then failed to untag v1
    retried = [p for m, p in workspace.requests if (m, p) == ("PUT", "/models/toy/versions/1")]
    assert len(retried) > 1  # azure-core's retry policy ran
    workspace.clear_failures()
    assert registry.alias("toy") == 2  # the newest assignment wins
    registry.set_alias("toy", 2)  # the next move cleans up
    assert "champion" not in ml_client.models.get(name="toy", version="1").tags


def test_a_registry_named_in_the_spec_gives_registry_model_references(ml_client, toy, tmp_path):
    registry = AzureMLRegistry(ml_client, tmp_path / "cache", registry_name="shared-models")
    version = toy.register(registry)
    assert version.url == "azureml://registries/shared-models/models/toy/versions/1"


def test_bundle_url_is_the_downloaded_bundle_with_its_reference_sample(registry, toy):
    import pandas as pd

    from serving.bundle import REFERENCE_FILE

    toy.register(registry)
    folder = registry.bundle_url("toy", 1)
    reference = pd.read_parquet(f"{folder}/{REFERENCE_FILE}")
    pd.testing.assert_frame_equal(reference, toy.frame.head(30).reset_index(drop=True),
                                  check_dtype=False)


def test_a_version_carries_its_trusted_holdout(registry, toy):
    import pandas as pd

    holdout = toy.frame.tail(40).reset_index(drop=True)
    registry.register("toy", model_bytes=toy.model_bytes, features=toy.features,
                      lineage={"target": "label", "task": "classification"},
                      reference=toy.frame.head(30), holdout=holdout)
    toy.register(registry)  # an older kind of version: no holdout
    pd.testing.assert_frame_equal(registry.holdout("toy", 1), holdout)
    assert registry.holdout("toy", 2) is None


def test_the_uploaded_bundle_carries_the_snapshot_of_its_fast_path(registry, toy):
    from pathlib import Path

    from serving.bundle import FAST_PATH_FILE, read_bundle_files, read_fast_path

    version = toy.register(registry)
    folder = Path(registry.bundle_url("toy", version.version))
    data = read_fast_path(read_bundle_files(str(folder)))  # its sha256 checked on the way
    assert data is not None and data == (folder / FAST_PATH_FILE).read_bytes()
    assert version.manifest["fast_path"]["sha256"] == registry.get("toy", 1).manifest[
        "fast_path"]["sha256"]
