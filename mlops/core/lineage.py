"""What identifies a run's inputs: the data's fingerprint, the spec's hash, the code's version.

Cache keys and the manifest's lineage are built from these, never from hashing DataFrames.
"""

from __future__ import annotations

import hashlib
import importlib.util
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlops.data.storage import FileInfo

# The code that can change a trained model or a prediction made with it, and nothing else, so
# editing a tool for people (tools/: the CLI, the local stack, sample data) keeps every cache:
# - the library (mlops): reading, validating, featurizing, fitting, judging, registering;
# - the scoring code (serving): what the endpoint and Azure ML run to predict, and the
#   functions model files refer to (serving.transforms);
# - the tasks: what each stage hands the library (train_model chooses fit_model's inputs).
# Not flows/: they wire tasks; what they pass a stage is in its key (data fingerprint, spec hash).
CODE_PACKAGES = ("mlops", "serving", "tasks")
# Modules of those packages that cannot change a model or a prediction, and why. Dotted names,
# so they follow a module that moves; tests/mlops/test_lineage.py fails if one no longer exists.
UNHASHED_MODULES = {
    "mlops.endpoint.local": "the local endpoint's HTTP client: it relays requests and answers; "
                      "the predictions are serving's",
    "mlops.azureml.shipping": "stages code folders (hashed themselves) and the lock's pins for "
                              "Azure ML; it copies, it computes nothing",
    "mlops.drift.report": "renders the drift report for people; whether the data drifted is "
                          "decided in mlops.drift",
    "mlops.data.watch": "lists a data location for the watcher; a training run identifies its "
                        "data by the data's fingerprint",
    **{
        f"mlops.tracking.{module}": "records runs in MLflow after the fact; it reads results, "
                                    "never feeds one"
        for module in ("protocol", "local", "azureml", "backend", "store", "recorder", "records",
                       "replay", "process", "template")
    },
}


@dataclass(frozen=True)
class DataRef:
    """Where the data is and what identifies its current content."""

    url: str
    files: tuple[FileInfo, ...]
    total_bytes: int
    fingerprint: str
    asset: str | None = None  # "name:version" when the URL came from an Azure ML data asset


def source_root() -> Path:
    """The folder holding the code packages (the project root, or site-packages)."""
    spec = importlib.util.find_spec(CODE_PACKAGES[0])
    if spec is None or spec.origin is None:  # pragma: no cover - this module is in it
        raise ModuleNotFoundError(f"package {CODE_PACKAGES[0]} not found")
    return Path(spec.origin).resolve().parent.parent


def _module_path(root: Path, module: str) -> Path:
    """Where `module` lives under `root`: ``a/b.py``, or ``a/b/__init__.py`` for a package."""
    base = root.joinpath(*module.split("."))
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def code_files(root: Path | None = None) -> list[Path]:
    """Every file the code version covers, relative to `root`, sorted: each ``.py`` under
    `CODE_PACKAGES` except `UNHASHED_MODULES`."""
    root = root or source_root()
    unhashed = {_module_path(root, module) for module in UNHASHED_MODULES}
    return [
        path.relative_to(root)
        for package in CODE_PACKAGES
        for path in sorted((root / package).rglob("*.py"))
        if path not in unhashed
    ]


def code_digest(root: Path | None = None) -> str:
    """Digest of `code_files`: their paths and contents."""
    root = root or source_root()
    digest = hashlib.sha256()
    for path in code_files(root):
        digest.update(path.as_posix().encode())
        digest.update((root / path).read_bytes())
    return digest.hexdigest()[:16]


@lru_cache(maxsize=1)
def code_version() -> str:
    """The version of the code that can change a model or a prediction (`code_files`).

    An edit there changes it, so cached stage results of older code are never reused; an edit
    anywhere else (tools, flows, docs, a commit of them) keeps it. The git commit is lineage,
    not identity: the manifest records it beside this (`git_commit`).
    """
    return code_digest()


@lru_cache(maxsize=1)
def git_commit() -> str:
    """The checkout's commit, for the manifest's lineage ("nogit" outside a git checkout)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=source_root(),
            capture_output=True, text=True, timeout=5, check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "nogit"
    return out.stdout.strip() or "nogit"


def run_key(stage: str, data: DataRef, spec_hash: str) -> str:
    """The cache key of a pipeline stage: same data, spec and code -> same result."""
    raw = f"{stage}|{data.fingerprint}|{spec_hash}|{code_version()}"
    return f"{stage}-{hashlib.sha256(raw.encode()).hexdigest()[:24]}"
