"""A model's release history: every promotion, rollback, rejection, approval and withdrawal.

Records are only ever appended (DESIGN.md, Registry). On a local disk the history is one
JSON-lines file beside the versions, ``<model>/releases.jsonl``, appended with ``O_APPEND``
under an exclusive ``flock``, so two writers never interleave a line. On other fsspec stores
(Blob Storage), which cannot append to a file safely, each record is its own object under
``<model>/releases/``, created exclusively; a reader merges both in time order.
"""

from __future__ import annotations

import fcntl
import json
import os
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import fsspec

# retained: the gate kept the champion (nothing registered); unresolved: a failed release
# whose endpoint did not take the old traffic back in time (the entry says what it was left in)
Kind = Literal["promotion", "rollback", "rejection", "approval", "withdrawal", "retained",
               "unresolved"]
HISTORY_FILE = "releases.jsonl"
HISTORY_DIR = "releases"


@dataclass(frozen=True)
class Release:
    """One entry: what happened to which versions, the traffic around it, why, and which run.

    `version` is the version the entry is about: the candidate of a promotion, approval,
    rejection, withdrawal, unresolved release or a canary's rollback, the version a rollback
    returns to; None for a retained champion's run (no candidate was registered).
    `environment` names where it happened when the spec names environments (empty: the spec's
    only endpoint); a promotion before production moves no champion.
    """

    kind: Kind
    model: str
    version: int | None
    champion_before: int | None
    champion_after: int | None
    traffic_before: dict[str, int] = field(default_factory=dict)
    traffic_after: dict[str, int] = field(default_factory=dict)
    reason: str = ""
    flow_run_id: str | None = None
    detail: str = ""
    at: str = field(default_factory=lambda: datetime.now(UTC).isoformat())
    environment: str = ""

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Release:
        return cls(**data)


def _is_local(fs: fsspec.AbstractFileSystem) -> bool:
    return "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,))


def append(fs: fsspec.AbstractFileSystem, model_dir: str, release: Release) -> None:
    """Add `release` to the history in `model_dir`; nothing already there is touched."""
    line = release.to_json() + b"\n"
    if _is_local(fs):
        os.makedirs(model_dir, exist_ok=True)
        fd = os.open(f"{model_dir}/{HISTORY_FILE}", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)  # closing releases the lock
        return
    stamp = release.at.replace(":", "").replace("+", "Z")
    fs.makedirs(f"{model_dir}/{HISTORY_DIR}", exist_ok=True)
    with fs.open(f"{model_dir}/{HISTORY_DIR}/{stamp}-{uuid.uuid4().hex[:8]}.json", "xb") as fh:
        fh.write(line)


def read(fs: fsspec.AbstractFileSystem, model_dir: str) -> list[Release]:
    """The whole history, oldest first."""
    lines: list[bytes] = []
    try:
        lines += fs.cat_file(f"{model_dir}/{HISTORY_FILE}").splitlines()
    except FileNotFoundError:
        pass  # no release written on this store yet
    try:
        lines += [fs.cat_file(path) for path in fs.ls(f"{model_dir}/{HISTORY_DIR}", detail=False)]
    except FileNotFoundError:
        pass
    records = [Release.from_json(json.loads(line)) for line in lines if line.strip()]
    return sorted(records, key=lambda r: r.at)
