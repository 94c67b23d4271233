"""Reading a model bundle: the one place a model is loaded, with every check a reader makes.

A bundle is one directory:

- ``manifest.json``: feature order and dtypes, target, task, metrics, lineage and the model
  file's sha256;
- ``model.skops``: the fitted scikit-learn ``Pipeline`` in skops format;
- ``reference.parquet``: a sample of the training data, for drift checks (not read here);
- ``fastpath.npz`` (optional): a snapshot of the model's fast path (`serving.fastpath.snapshot`),
  named in the manifest's ``fast_path`` with its sha256 and the `code_key` of the code that
  wrote it, so a batch process can score without loading the model (`read_fast_path`).

`load_bundle` checks, in order: the manifest's shape, the model file's sha256 against it, the
model file itself (`serving.model_file`: bounded zip, only exact allow-listed names), the loaded
object (an allow-listed scikit-learn estimator) and its answers (`predict`, and `predict_proba`
for classification, on probe rows built from the manifest's features). Every failure is a
`BundleLoadError` saying what and where. The endpoint, the Azure ML entry script, the registries
and the Azure ML training read-back all load through here (docs/trust-boundary.md). Light
imports only: skops and scikit-learn are imported when a model is loaded.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import fsspec
import numpy as np

from serving.allowed_types import ALLOWED_TYPES
from serving.model_file import BundleLoadError, ZipLimits, load_model_file
from serving.storage import open_fs

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["BundleLoadError", "Bundle", "Feature", "carries_fast_path", "load_bundle",
           "load_model", "read_bundle_files", "read_fast_path"]

MODEL_FILE = "model.skops"
MANIFEST_FILE = "manifest.json"
REFERENCE_FILE = "reference.parquet"
FAST_PATH_FILE = "fastpath.npz"
FORMAT_VERSION = 1
TASKS = frozenset({"classification", "regression"})
PROBE_ROWS = 3

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


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


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _read(fs: fsspec.AbstractFileSystem, path: str, url: str) -> bytes:
    try:
        with fs.open(path, "rb") as fh:
            return fh.read()
    except FileNotFoundError as exc:
        raise BundleLoadError(f"bundle {url}: {path.rsplit('/', 1)[-1]} is missing") from exc


# --- the manifest ---------------------------------------------------------------------------


def parse_features(value: Any, source: str) -> tuple[Feature, ...]:
    """The manifest's `features`: a non-empty list of {name, dtype} strings, names unique."""
    if not isinstance(value, list) or not value:
        raise BundleLoadError(f"{source}: 'features' must be a non-empty list, got {_short(value)}")
    bad = [f for f in value if not isinstance(f, dict)
           or not isinstance(f.get("name"), str) or not isinstance(f.get("dtype"), str)]
    if bad:
        raise BundleLoadError(
            f"{source}: every feature must be {{'name': str, 'dtype': str}}, got {_short(bad[0])}")
    names = [f["name"] for f in value]
    if len(set(names)) != len(names):
        raise BundleLoadError(f"{source}: feature names repeat: {_short(names)}")
    return tuple(Feature(f["name"], f["dtype"]) for f in value)


def _manifest_problems(manifest: dict[str, Any]) -> list[str]:
    problems = []
    if manifest.get("format_version") != FORMAT_VERSION:
        problems.append(f"format_version {_short(manifest.get('format_version'))}, "
                        f"this code reads {FORMAT_VERSION}")
    if not isinstance(manifest.get("model_name"), str) or not manifest.get("model_name"):
        problems.append(f"'model_name' must be a non-empty string, got "
                        f"{_short(manifest.get('model_name'))}")
    if type(manifest.get("version")) not in (int, str):
        problems.append(f"'version' must be a number or a string, got "
                        f"{_short(manifest.get('version'))}")
    if manifest.get("task") not in TASKS:
        problems.append(f"'task' must be one of {sorted(TASKS)}, got "
                        f"{_short(manifest.get('task'))}")
    sha = manifest.get("model_sha256")
    if not isinstance(sha, str) or not _SHA256.match(sha):
        problems.append(f"'model_sha256' must be 64 hex digits, got {_short(sha)}")
    fast = manifest.get("fast_path")
    if fast is not None and not (
            isinstance(fast, dict) and fast.get("file") == FAST_PATH_FILE
            and isinstance(fast.get("sha256"), str) and _SHA256.match(fast["sha256"])
            and isinstance(fast.get("code"), str)):
        problems.append(f"'fast_path' must be {{'file': '{FAST_PATH_FILE}', 'sha256': 64 hex "
                        f"digits, 'code': str}}, got {_short(fast)}")
    return problems


def parse_manifest(data: bytes, source: str) -> tuple[dict[str, Any], tuple[Feature, ...]]:
    """The manifest and its features, or a `BundleLoadError` listing every problem."""
    try:
        manifest = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise BundleLoadError(f"{source}: {MANIFEST_FILE} is not JSON: {exc}") from exc
    if not isinstance(manifest, dict):
        raise BundleLoadError(
            f"{source}: {MANIFEST_FILE} must be a JSON object, got {type(manifest).__name__}")
    problems = _manifest_problems(manifest)
    if problems:
        raise BundleLoadError(f"{source}: {MANIFEST_FILE}: " + "; ".join(problems))
    return manifest, parse_features(manifest.get("features"), f"{source}: {MANIFEST_FILE}")


def read_manifest(url: str, storage_options: dict[str, Any] | None = None) -> dict[str, Any]:
    fs, root = open_fs(url, storage_options)
    return parse_manifest(_read(fs, f"{root.rstrip('/')}/{MANIFEST_FILE}", url), url)[0]


# --- the model ------------------------------------------------------------------------------


def _probe_values(dtype: str) -> list[Any]:
    if dtype.startswith(("float", "Float", "int", "Int", "uint", "UInt")):
        return [0, 1, 2]
    if dtype in ("bool", "boolean"):
        return [True, False, True]
    if dtype.startswith("datetime64"):
        return ["2020-01-01T00:00:00", "2021-06-15T12:00:00", "2022-12-31T23:59:59"]
    return ["a", "b", "c"]


def probe_frame(features: Sequence[Feature], source: str) -> pd.DataFrame:
    """A few rows of plain values in the features' training dtypes."""
    import pandas as pd  # noqa: PLC0415 - a batch flow's process reads manifests, never rows

    from serving.coercion import coercer_for  # noqa: PLC0415

    columns = {}
    for feature in features:
        try:
            columns[feature.name] = coercer_for(feature.dtype)(_probe_values(feature.dtype))
        except (ValueError, TypeError) as exc:
            raise BundleLoadError(
                f"{source}: feature '{feature.name}' has a dtype no request can fill "
                f"({_short(feature.dtype)}): {exc}") from exc
    return pd.DataFrame(columns)


def _output_problems(model: Any, frame: pd.DataFrame, task: str) -> list[str]:
    n = len(frame)
    predictions = np.asarray(model.predict(frame))
    problems = []
    if predictions.ndim not in (1, 2) or predictions.shape[0] != n:
        problems.append(f"predict gave shape {predictions.shape} for {n} rows")
    if task == "classification":
        if not callable(getattr(model, "predict_proba", None)):
            return [*problems, "a classifier without predict_proba"]
        proba = np.asarray(model.predict_proba(frame))
        classes = len(getattr(model, "classes_", ()))
        if proba.ndim != 2 or proba.shape[0] != n or proba.shape[1] != classes or classes < 2:
            problems.append(f"predict_proba gave shape {proba.shape} for {n} rows and "
                            f"{classes} classes")
    return problems


def check_model(model: Any, features: Sequence[Feature], task: str, source: str) -> None:
    """Refuse a loaded object that is not an allowed estimator answering probe rows.

    Raises:
        BundleLoadError: the object is not a scikit-learn estimator of an allowed type, or
            `predict` (and `predict_proba` for classification) fails or answers the wrong
            number of rows on `PROBE_ROWS` rows built from `features`.
    """
    from sklearn.base import BaseEstimator  # noqa: PLC0415

    kind = f"{type(model).__module__}.{type(model).__qualname__}"
    if not isinstance(model, BaseEstimator) or kind not in ALLOWED_TYPES:
        raise BundleLoadError(f"{source}: the model file holds a {kind}, not an estimator")
    if not callable(getattr(model, "predict", None)):
        raise BundleLoadError(f"{source}: the model ({kind}) has no predict")
    frame = probe_frame(features, source)
    try:
        problems = _output_problems(model, frame, task)
    except Exception as exc:  # anything the model raises means it cannot serve
        raise BundleLoadError(
            f"{source}: the model ({kind}) failed on {len(frame)} probe rows: "
            f"{type(exc).__name__}: {exc}") from exc
    if problems:
        raise BundleLoadError(f"{source}: the model ({kind}) " + "; ".join(problems))


def load_model(
    data: bytes, features: Sequence[Feature], task: str, source: str,
    limits: ZipLimits | None = None,
) -> Any:
    """The fitted pipeline in `data`, checked as a file and as a model (see the module doc).

    Raises:
        BundleLoadError: see `serving.model_file.load_model_file` and `check_model`.
    """
    model = load_model_file(data, source, limits)
    check_model(model, features, task, source)
    return model


def _checked_files(url: str, storage_options: dict[str, Any] | None,
                   ) -> tuple[dict[str, Any], tuple[Feature, ...], bytes]:
    """The manifest, its features and the model file's bytes, checked against its sha256."""
    fs, root = open_fs(url, storage_options)
    root = root.rstrip("/")
    manifest, features = parse_manifest(_read(fs, f"{root}/{MANIFEST_FILE}", url), url)
    data = _read(fs, f"{root}/{MODEL_FILE}", url)
    digest = sha256_bytes(data)
    if digest != manifest["model_sha256"]:
        raise BundleLoadError(
            f"bundle {url}: model sha256 {digest[:12]}... does not match the manifest's "
            f"{manifest['model_sha256'][:12]}...; refusing to load"
        )
    return manifest, features, data


def load_bundle(url: str, storage_options: dict[str, Any] | None = None) -> Bundle:
    """Load a bundle from a local path or fsspec URL with every check (see the module doc).

    Args:
        url: The bundle's folder: a path, `file://...` or `abfs://container/registry/m/3`.
        storage_options: Credentials; default: from the environment (`serving.storage`).

    Raises:
        BundleLoadError: a file is missing, the manifest is malformed, the sha256 differs from
            the manifest's, the model file holds a type outside the allow-list, or the model
            does not answer probe rows.
    """
    manifest, features, data = _checked_files(url, storage_options)
    model = load_model(data, features, manifest["task"], f"bundle {url}")
    return Bundle(model=model, manifest=manifest, url=url, features=features)


def read_bundle_files(url: str, storage_options: dict[str, Any] | None = None) -> Bundle:
    """A bundle whose model is not loaded (`Bundle.model` is None): the manifest checked, and
    the model file's sha256 against it, as `load_bundle` checks them, with neither skops nor
    scikit-learn imported. For a scorer whose fast path comes from a snapshot
    (`serving.scoring.Scorer.restored`).

    Raises:
        BundleLoadError: a file is missing, the manifest is malformed or the sha256 differs.
    """
    manifest, features, _ = _checked_files(url, storage_options)
    return Bundle(model=None, manifest=manifest, url=url, features=features)


def carries_fast_path(manifest: dict[str, Any]) -> bool:
    """Whether the manifest names a snapshot of the model's fast path that this code reads:
    one written by code with the same `serving.fastpath.snapshot.code_key` (fast path code and
    scikit-learn version)."""
    entry = manifest.get("fast_path")
    if not isinstance(entry, dict):
        return False
    from serving.fastpath.snapshot import code_key  # noqa: PLC0415

    return entry.get("code") == code_key()


def read_fast_path(bundle: Bundle, storage_options: dict[str, Any] | None = None,
                   ) -> bytes | None:
    """The snapshot of the model's fast path that the bundle carries, checked against the
    manifest's sha256; None unless `carries_fast_path`.

    Raises:
        BundleLoadError: the manifest names a snapshot that is missing or whose sha256
            differs.
    """
    if not carries_fast_path(bundle.manifest):
        return None
    entry = bundle.manifest["fast_path"]
    fs, root = open_fs(bundle.url, storage_options)
    data = _read(fs, f"{root.rstrip('/')}/{FAST_PATH_FILE}", bundle.url)
    digest = sha256_bytes(data)
    if digest != entry["sha256"]:
        raise BundleLoadError(
            f"bundle {bundle.url}: {FAST_PATH_FILE} sha256 {digest[:12]}... does "
            f"not match the manifest's {entry['sha256'][:12]}...; refusing to load")
    return data
