"""What identifies a run's inputs: the data's fingerprint, the spec's hash, the code's version.

Cache keys and the manifest's lineage are built from these, never from hashing DataFrames.
"""

from __future__ import annotations

import hashlib
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlops.data.storage import FileInfo

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CODE_PACKAGES = ("mlops", "serving", "tasks")


@dataclass(frozen=True)
class DataRef:
    """Where the data is and what identifies its current content."""

    url: str
    files: tuple[FileInfo, ...]
    total_bytes: int
    fingerprint: str


@lru_cache(maxsize=1)
def code_version() -> str:
    """Digest of the project's Python sources (plus the git commit when there is one).

    Any edit to the library, serving or task code changes it, so cached results of an older
    code version are never reused.
    """
    digest = hashlib.sha256()
    for package in CODE_PACKAGES:
        for path in sorted((PROJECT_ROOT / package).rglob("*.py")):
            digest.update(str(path.relative_to(PROJECT_ROOT)).encode())
            digest.update(path.read_bytes())
    return f"{git_commit()}+{digest.hexdigest()[:12]}"


@lru_cache(maxsize=1)
def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT_ROOT,
            capture_output=True, text=True, timeout=5, check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "nogit"
    return out.stdout.strip() or "nogit"


def run_key(stage: str, data: DataRef, spec_hash: str) -> str:
    """The cache key of a pipeline stage: same data, spec and code -> same result."""
    raw = f"{stage}|{data.fingerprint}|{spec_hash}|{code_version()}"
    return f"{stage}-{hashlib.sha256(raw.encode()).hexdigest()[:24]}"
