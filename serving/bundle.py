"""Reading a model bundle: the fitted pipeline, its manifest and its digest check.

A bundle is one directory:

- ``model.skops``: the fitted scikit-learn ``Pipeline`` in skops format, which loads without
  running arbitrary code;
- ``manifest.json``: feature order and dtypes, target, task, metrics, lineage and the model
  file's sha256;
- ``reference.parquet``: a sample of the training data, for drift checks (not read here).

Loading checks the digest first and then refuses any type outside a fixed allow-list of
modules, so a tampered or hostile file never reaches ``pickle``-like code paths. This module is
imported by the scoring server and the Azure ML entry script: light imports only.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import fsspec

from serving.skops_import import import_skops_io
from serving.storage import open_fs

MODEL_FILE = "model.skops"
MANIFEST_FILE = "manifest.json"
REFERENCE_FILE = "reference.parquet"
FORMAT_VERSION = 1

# Types from these modules may be rebuilt by skops; everything else is refused.
TRUSTED_MODULE_PREFIXES = ("sklearn.", "numpy.", "scipy.", "serving.transforms.")


class BundleLoadError(Exception):
    """The bundle is incomplete, its digest does not match, or it holds untrusted types."""


@dataclass(frozen=True)
class Feature:
    name: str
    dtype: str


@dataclass(frozen=True)
class Bundle:
    """A loaded model with what is needed to feed it exactly as in training."""

    model: Any
    manifest: dict[str, Any]
    url: str
    features: tuple[Feature, ...] = field(default=())

    @property
    def model_name(self) -> str:
        return str(self.manifest["model_name"])

    @property
    def version(self) -> str:
        return str(self.manifest["version"])

    @property
    def task(self) -> str:
        return str(self.manifest["task"])

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_trusted(types: list[str]) -> list[str]:
    """Return `types` if every one is on the allow-list, else raise naming the others."""
    refused = sorted(t for t in types if not t.startswith(TRUSTED_MODULE_PREFIXES))
    if refused:
        raise BundleLoadError(f"model file holds types outside the allow-list: {refused}")
    return types


def _read(fs: fsspec.AbstractFileSystem, path: str) -> bytes:
    try:
        with fs.open(path, "rb") as fh:
            return fh.read()
    except FileNotFoundError as exc:
        raise BundleLoadError(f"bundle file missing: {path}") from exc


def read_manifest(url: str, storage_options: dict[str, Any] | None = None) -> dict[str, Any]:
    fs, root = open_fs(url, storage_options)
    try:
        manifest = json.loads(_read(fs, f"{root.rstrip('/')}/{MANIFEST_FILE}"))
    except json.JSONDecodeError as exc:
        raise BundleLoadError(f"manifest of {url} is not JSON: {exc}") from exc
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BundleLoadError(
            f"bundle {url} has format_version {manifest.get('format_version')!r}, "
            f"this code reads {FORMAT_VERSION}"
        )
    return manifest


def load_bundle(url: str, storage_options: dict[str, Any] | None = None) -> Bundle:
    """Load a bundle from a local path or fsspec URL, verifying its digest and types.

    Args:
        url: The bundle's folder: a path, `file://...` or `abfs://container/registry/m/3`.
        storage_options: Credentials; default: from the environment (`serving.storage`).

    Raises:
        BundleLoadError: a file is missing, the sha256 differs from the manifest's, or the
            model holds a type outside the allow-list.
    """
    sio = import_skops_io()  # sklearn comes with it; only loaders pay for it

    fs, root = open_fs(url, storage_options)
    root = root.rstrip("/")
    manifest = json.loads(_read(fs, f"{root}/{MANIFEST_FILE}"))
    if manifest.get("format_version") != FORMAT_VERSION:
        raise BundleLoadError(f"bundle {url}: unsupported format_version")
    data = _read(fs, f"{root}/{MODEL_FILE}")
    digest = sha256_bytes(data)
    if digest != manifest.get("model_sha256"):
        raise BundleLoadError(
            f"bundle {url}: model sha256 {digest[:12]}... does not match the manifest's "
            f"{str(manifest.get('model_sha256'))[:12]}...; refusing to load"
        )
    trusted = check_trusted(sio.get_untrusted_types(data=data))
    model = sio.loads(data, trusted=trusted)
    features = tuple(Feature(f["name"], f["dtype"]) for f in manifest["features"])
    return Bundle(model=model, manifest=manifest, url=url, features=features)
