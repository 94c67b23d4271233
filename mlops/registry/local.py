"""The file-based model registry: a directory (or any fsspec URL) of numbered versions.

Layout::

    <root>/<model>/<version>/{model.skops, manifest.json, reference.parquet, holdout.parquet}
    <root>/<model>/aliases.json          {"champion": 3}
    <root>/<model>/releases.jsonl        the release history (`mlops.registry.releases`)

Guarantees (DESIGN.md, Registry): versions are assigned here, 1, 2, 3...; a version never
changes once written; a half-written one is never visible (only folders whose manifest exists
count, and the manifest is written last); the alias ``champion`` points at exactly one version.
A number claimed by a run that crashed stays unused, as in Azure ML, so versions may have gaps.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from mlops.core.errors import RegistryError
from mlops.data.storage import write_file
from mlops.registry import releases as history
from mlops.registry.protocol import ModelVersion, NewVersion, RegistryWriter
from mlops.registry.releases import Release
from serving.bundle import MANIFEST_FILE, Bundle, BundleLoadError, load_bundle
from serving.storage import open_fs
from serving.storage import storage_options as options_from_env

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

CHAMPION = "champion"
ALIASES_FILE = "aliases.json"
CLAIM_FILE = ".claim"


class LocalRegistry(RegistryWriter):
    """A registry on a local folder or an fsspec URL (a blob container for a small team)."""

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None) -> None:
        self.url = url.rstrip("/")
        self._storage_options = (
            options_from_env(self.url) if storage_options is None else storage_options
        )
        self.fs, self.root = open_fs(self.url, self._storage_options)

    def _model_dir(self, name: str) -> str:
        return f"{self.root}/{name}"

    def _version_url(self, name: str, version: int) -> str:
        return f"{self.url}/{name}/{version}"

    def _numbers(self, name: str) -> dict[int, str]:
        """Every claimed version number with its folder, complete or not."""
        try:
            entries = self.fs.ls(self._model_dir(name), detail=False)
        except FileNotFoundError:
            return {}
        numbers = {}
        for entry in entries:
            last = entry.rstrip("/").rsplit("/", 1)[-1]
            if last.isdigit():
                numbers[int(last)] = entry
        return numbers

    def versions(self, name: str) -> list[int]:
        """Complete versions only, ascending."""
        return sorted(
            n for n, path in self._numbers(name).items()
            if self.fs.exists(f"{path}/{MANIFEST_FILE}")
        )

    def get(self, name: str, version: int) -> ModelVersion:
        if version not in self.versions(name):
            raise RegistryError(f"model '{name}' has no version {version} in {self.url}")
        path = f"{self._model_dir(name)}/{version}/{MANIFEST_FILE}"
        manifest = json.loads(self.fs.cat_file(path))
        return ModelVersion(name, version, self._version_url(name, version), manifest)

    def bundle_url(self, name: str, version: int) -> str:
        """Where the version's files (the reference sample, for drift checks) can be read."""
        return self.get(name, version).url

    def holdout(self, name: str, version: int) -> pd.DataFrame | None:
        """The version's trusted holdout, or None for a version registered without one."""
        from mlops.model.bundle import HOLDOUT_FILE, read_holdout  # noqa: PLC0415 - pandas
        entry = self.get(name, version)  # refuses a missing or half-written version
        return read_holdout(self.fs, f"{self._model_dir(name)}/{entry.version}/{HOLDOUT_FILE}")

    def load(self, name: str, version: int) -> Bundle:
        """Load a version's model, checking its digest (raises RegistryError if it fails)."""
        entry = self.get(name, version)
        try:
            return load_bundle(entry.url, self._storage_options)
        except BundleLoadError as exc:
            raise RegistryError(f"model '{name}' version {version}: {exc}") from exc

    def _claim(self, name: str) -> int:
        """Take the next free number; exclusive creation makes two writers never share one.

        "xb" is O_EXCL on a local disk; on Blob Storage adlfs commits the claim blob with
        `If-None-Match: *`, which the service refuses (409) when the blob exists.
        """
        numbers = self._numbers(name)
        candidate = max(numbers, default=0) + 1
        for version in range(candidate, candidate + 100):
            folder = f"{self._model_dir(name)}/{version}"
            self.fs.makedirs(folder, exist_ok=True)
            try:
                with self.fs.open(f"{folder}/{CLAIM_FILE}", "xb") as fh:
                    fh.write(b"claimed")
            except FileExistsError:
                continue
            return version
        raise RegistryError(f"could not claim a version for '{name}' in {self.url}")

    def _register(self, name: str, new: NewVersion) -> ModelVersion:
        """Write a new version and return it; nothing is visible until it is complete.

        `new.holdout` is the version's trusted holdout (the rows it was judged on), kept so that
        later candidates are judged on it too.
        """
        from mlops.model.bundle import build_manifest, write_bundle  # noqa: PLC0415 - pandas

        version = self._claim(name)
        manifest = build_manifest(
            model_name=name, version=version, model_bytes=new.model_bytes,
            features=new.features, lineage=new.lineage, fast_path=new.fast_path,
        )
        folder = f"{self._model_dir(name)}/{version}"
        write_bundle(self.fs, folder, new.model_bytes, manifest, new.reference, new.holdout,
                     new.fast_path)
        logger.info("Registered %s version %s at %s", name, version, self.url)
        return ModelVersion(name, version, self._version_url(name, version), manifest)

    def aliases(self, name: str) -> dict[str, int]:
        path = f"{self._model_dir(name)}/{ALIASES_FILE}"
        try:
            return {k: int(v) for k, v in json.loads(self.fs.cat_file(path)).items()}
        except FileNotFoundError:
            return {}

    def alias(self, name: str, alias: str = CHAMPION) -> int | None:
        return self.aliases(name).get(alias)

    def set_alias(self, name: str, version: int, alias: str = CHAMPION) -> None:
        """Point `alias` at `version` (one write, so it names exactly one version)."""
        if version not in self.versions(name):
            raise RegistryError(f"cannot alias '{alias}' to missing {name} version {version}")
        aliases = {**self.aliases(name), alias: version}
        write_file(
            self.fs, f"{self._model_dir(name)}/{ALIASES_FILE}", json.dumps(aliases).encode()
        )
        logger.info("Alias %s of %s now points at version %s", alias, name, version)

    def append_release(self, release: Release) -> None:
        """Append one entry to the model's release history (never rewritten)."""
        history.append(self.fs, self._model_dir(release.model), release)

    def releases(self, name: str) -> list[Release]:
        """The model's release history, oldest first."""
        return history.read(self.fs, self._model_dir(name))
