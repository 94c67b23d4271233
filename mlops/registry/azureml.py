"""The model registry on Azure ML: each version a custom-model asset holding one bundle folder.

Same contract as ``mlops.registry.local.LocalRegistry`` (DESIGN.md, Registry):

- Versions are Azure ML's asset versions 1, 2, 3... The manifest inside the bundle records its
  version, so the number is taken before the upload, the way the SDK numbers an asset without a
  version (one more than the highest); Azure ML refuses a second asset with the same version, and
  then the next number is tried. A version exists only once its upload is complete.
- Lineage and metrics are tags; the digests of the model file and the manifest are properties,
  which Azure ML never lets change.
- ``champion`` is a tag that one version holds. Moving it sets it on the new version first, then
  removes it from the others; the tag's value is when it was set, and the newest wins, so a
  process stopped between the two steps still leaves exactly one champion to readers.
- A version is loaded by downloading it (once; versions never change, so the download is kept
  under the state folder) and loading it like a local bundle, with the model's digest checked
  against the manifest and the manifest's against the asset's property.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import fsspec
import pandas as pd
from azure.ai.ml import MLClient
from azure.ai.ml.entities import Model
from azure.ai.ml.exceptions import AssetPathException
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError

from mlops.azureml.client import azure_errors, registry_client, workspace_client
from mlops.azureml.entities import CHAMPION_TAG, model_entity, model_ref
from mlops.core.errors import RegistryError
from mlops.core.settings import Settings
from mlops.core.spec import PipelineSpec
from mlops.model.bundle import HOLDOUT_FILE, build_manifest, read_holdout, write_bundle
from mlops.registry.protocol import ModelVersion, NewVersion, RegistryWriter
from mlops.registry.releases import Release
from serving.bundle import MANIFEST_FILE, Bundle, BundleLoadError, load_bundle

logger = logging.getLogger(__name__)

DIGEST_PROPERTY = "mlops.model_sha256"
MANIFEST_PROPERTY = "mlops.manifest_sha256"
RELEASE_TAG = "mlops.release."  # + the entry's time; the value is the entry as JSON
BUNDLE_FOLDER = "bundle"


def _taken(exc: Exception) -> bool:
    """Whether Azure ML refused a version because it exists already."""
    if isinstance(exc, ResourceExistsError | AssetPathException):
        return True
    return isinstance(exc, HttpResponseError) and exc.status_code == 409


class AzureMLRegistry(RegistryWriter):
    """Model versions in an Azure ML workspace, or in an Azure ML registry when one is named.

    Args:
        ml_client: a client of the workspace, or of the registry.
        cache_dir: where downloaded versions are kept (they never change).
        registry_name: the Azure ML registry `ml_client` points at, if any.
    """

    def __init__(
        self, ml_client: MLClient, cache_dir: Path, *, registry_name: str | None = None,
        max_attempts: int = 5,
    ) -> None:
        self.ml_client = ml_client
        self.cache_dir = Path(cache_dir)
        self.registry_name = registry_name
        self.max_attempts = max_attempts
        self.url = (
            f"azureml://registries/{registry_name}" if registry_name
            else f"azureml workspace {getattr(ml_client, 'workspace_name', '?')}"
        )

    @classmethod
    def from_spec(cls, spec: PipelineSpec, settings: Settings) -> AzureMLRegistry:
        """Downloads are kept per registry or workspace: two may both have a `churn` v3."""
        name = spec.registry.azureml_registry
        if name:
            client, scope = registry_client(name), f"registry-{name}"
        else:
            target = spec.azureml
            client = workspace_client(target)
            scope = f"{target.subscription_id}-{target.resource_group}-{target.workspace}"
        return cls(client, settings.state_dir / "azureml" / "models" / scope, registry_name=name)

    # -- reading ---------------------------------------------------------------------------

    def _assets(self, name: str) -> list[Model]:
        with azure_errors(RegistryError, f"listing the versions of model '{name}' in {self.url}"):
            try:
                return list(self.ml_client.models.list(name=name))
            except ResourceNotFoundError:
                return []

    @staticmethod
    def _ours(asset: Model) -> bool:
        return str(asset.version).isdigit() and DIGEST_PROPERTY in (asset.properties or {})

    def versions(self, name: str) -> list[int]:
        """Versions registered by this project, ascending."""
        return sorted(int(a.version) for a in self._assets(name) if self._ours(a))

    def _asset(self, name: str, version: int) -> Model:
        with azure_errors(RegistryError, f"reading model '{name}' version {version}"):
            try:
                asset = self.ml_client.models.get(name=name, version=str(version))
            except ResourceNotFoundError:
                raise RegistryError(
                    f"model '{name}' has no version {version} in {self.url}"
                ) from None
        if not self._ours(asset):
            raise RegistryError(
                f"model '{name}' version {version} in {self.url} is not a bundle of this project "
                f"(no '{DIGEST_PROPERTY}' property)"
            )
        return asset

    def _download(self, asset: Model, final: Path) -> None:
        scratch = final.parent / f".download-{final.name}-{uuid.uuid4().hex[:8]}"
        try:
            with azure_errors(RegistryError, f"downloading model '{asset.name}' v{asset.version}"):
                self.ml_client.models.download(
                    name=asset.name, version=str(asset.version), download_path=str(scratch)
                )
            manifests = sorted(scratch.rglob(MANIFEST_FILE))
            if len(manifests) != 1:
                raise RegistryError(
                    f"model '{asset.name}' v{asset.version} holds {len(manifests)} manifests, "
                    "expected one bundle"
                )
            try:
                os.replace(manifests[0].parent, final)
            except OSError:
                if not (final / MANIFEST_FILE).exists():  # else another process was first
                    raise
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _local(self, name: str, version: int) -> Path:
        """The version's bundle on local disk, its manifest checked against the asset."""
        asset = self._asset(name, version)
        final = self.cache_dir / name / str(version)
        if not (final / MANIFEST_FILE).exists():
            final.parent.mkdir(parents=True, exist_ok=True)
            self._download(asset, final)
        digest = hashlib.sha256((final / MANIFEST_FILE).read_bytes()).hexdigest()
        if digest != asset.properties.get(MANIFEST_PROPERTY):
            raise RegistryError(
                f"model '{name}' version {version}: the manifest's sha256 {digest[:12]}... is not "
                f"the one registered ({str(asset.properties.get(MANIFEST_PROPERTY))[:12]}...); "
                f"refusing it (delete {final} to download it again)"
            )
        return final

    def get(self, name: str, version: int) -> ModelVersion:
        """The version with its manifest; `url` is what a deployment names it by."""
        manifest = json.loads((self._local(name, version) / MANIFEST_FILE).read_bytes())
        return ModelVersion(name, version, model_ref(name, version, self.registry_name), manifest)

    def bundle_url(self, name: str, version: int) -> str:
        """The version's files on local disk (downloaded once, manifest checked): the
        reference sample is read from there for drift checks."""
        return str(self._local(name, version))

    def holdout(self, name: str, version: int) -> pd.DataFrame | None:
        """The version's trusted holdout from its download, or None if it was registered
        without one."""
        path = self._local(name, version) / HOLDOUT_FILE
        return read_holdout(fsspec.filesystem("file"), str(path))

    def load(self, name: str, version: int) -> Bundle:
        """Load a version's model, checking its digests (raises RegistryError if one fails)."""
        folder = self._local(name, version)
        try:
            return load_bundle(str(folder))
        except BundleLoadError as exc:
            raise RegistryError(f"model '{name}' version {version}: {exc}") from exc

    # -- writing ---------------------------------------------------------------------------

    def _create(self, name: str, version: int, new: NewVersion) -> dict[str, Any] | None:
        """Upload the bundle as `version`; None if that version was taken meanwhile."""
        manifest = build_manifest(
            model_name=name, version=version, model_bytes=new.model_bytes,
            features=new.features, lineage=new.lineage, fast_path=new.fast_path,
        )
        with tempfile.TemporaryDirectory(prefix="mlops-register-") as staging:
            folder = Path(staging) / BUNDLE_FOLDER
            write_bundle(fsspec.filesystem("file"), str(folder), new.model_bytes, manifest,
                         new.reference, new.holdout, new.fast_path)
            entity = model_entity(name, version, folder, manifest)
            with azure_errors(RegistryError, f"registering model '{name}' version {version}"):
                try:
                    self.ml_client.models.create_or_update(entity)
                except Exception as exc:
                    if _taken(exc) or (self.registry_name and self._exists(name, version)):
                        return None
                    raise
        return manifest

    def _exists(self, name: str, version: int) -> bool:
        """Whether `version` exists. In an Azure ML registry the SDK takes the 409 of its upload
        reservation for "already uploaded" and falls back to a workspace datastore, which a
        registry client has not: the failure does not say the version was taken, this does."""
        try:
            self.ml_client.models.get(name=name, version=str(version))
        except ResourceNotFoundError:
            return False
        return True

    def _register(self, name: str, new: NewVersion) -> ModelVersion:
        """Upload a new version and return it; Azure ML makes it visible only when complete.

        The bundle folder carries `new.holdout` (the version's trusted holdout) like the rest.
        """
        for _ in range(self.max_attempts):
            numbers = [int(a.version) for a in self._assets(name) if str(a.version).isdigit()]
            version = max(numbers, default=0) + 1
            manifest = self._create(name, version, new)
            if manifest is not None:
                logger.info("Registered %s version %s in %s", name, version, self.url)
                return ModelVersion(
                    name, version, model_ref(name, version, self.registry_name), manifest
                )
            logger.info("Version %s of %s was taken meanwhile; trying the next", version, name)
        raise RegistryError(
            f"could not register '{name}' in {self.url}: {self.max_attempts} version numbers in a "
            "row were taken by other writers"
        )

    # -- champion --------------------------------------------------------------------------

    def _holders(self, name: str, alias: str) -> list[Model]:
        """Versions holding the alias tag, oldest assignment first."""
        holders = [a for a in self._assets(name) if self._ours(a) and alias in (a.tags or {})]
        return sorted(holders, key=lambda a: (str(a.tags[alias]), int(a.version)))

    def alias(self, name: str, alias: str = CHAMPION_TAG) -> int | None:
        holders = self._holders(name, alias)
        return int(holders[-1].version) if holders else None

    def _retag(self, asset: Model, tags: dict[str, str]) -> None:
        asset.tags = tags
        with azure_errors(RegistryError, f"tagging model '{asset.name}' v{asset.version}"):
            self.ml_client.models.create_or_update(asset)

    def set_alias(self, name: str, version: int, alias: str = CHAMPION_TAG) -> None:
        """Give `version` the alias tag, then take it from every other version."""
        target = self._asset(name, version)
        others = [a for a in self._holders(name, alias) if int(a.version) != version]
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        self._retag(target, {**(target.tags or {}), alias: stamp})
        for other in others:
            self._retag(other, {k: v for k, v in other.tags.items() if k != alias})
        logger.info("Alias %s of %s now points at version %s", alias, name, version)

    # -- release history -------------------------------------------------------------------

    def append_release(self, release: Release) -> None:
        """Add the entry as a tag ``mlops.release.<time>`` of the version it is about (the
        model's first version when it names none); tags of other entries stay as they are."""
        version = release.version or release.champion_before or min(self.versions(release.model))
        asset = self._asset(release.model, version)
        key = f"{RELEASE_TAG}{release.at}"
        self._retag(asset, {**(asset.tags or {}), key: release.to_json().decode()})

    def releases(self, name: str) -> list[Release]:
        """Every version's release tags, oldest first."""
        found = [
            Release.from_json(json.loads(value))
            for asset in self._assets(name) if self._ours(asset)
            for key, value in (asset.tags or {}).items() if key.startswith(RELEASE_TAG)
        ]
        return sorted(found, key=lambda r: r.at)
