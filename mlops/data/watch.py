"""What is new in a data location since the last look: the watcher's memory, without Prefect.

A watermark records every file already announced (URL, size, version = etag or mtime). A scan
lists the location, takes a second look after a short settling pause, and returns the files that
are new or changed *and* did not change between the two looks: a file still being written is
left for the next scan. Half-written names (`*.tmp`, `*.part`, `_temporary/`...) are never
listed (`mlops.data.storage.is_hidden_or_temp`).

The watermark is saved after the caller has announced the files (`Watermark.save`), so a crash in
between announces them again on the next scan rather than never: at least once, and a restarted
watcher never announces a file it has saved as seen.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field

from mlops.core.errors import DataLoadError
from mlops.data.storage import FileInfo, list_data_files, url_to_fs

logger = logging.getLogger(__name__)

Seen = dict[str, tuple[int, str]]


def watermark_url(state_location: str, location: str) -> str:
    """Where the watermark of a watched location lives (one file per location)."""
    digest = hashlib.sha256(location.encode()).hexdigest()[:16]
    return f"{state_location.rstrip('/')}/watch/{digest}.json"


@dataclass
class Watermark:
    """The files already announced for one location, persisted as JSON at `url`."""

    url: str
    location: str
    seen: Seen = field(default_factory=dict)
    exists: bool = False

    @classmethod
    def load(cls, url: str, location: str) -> Watermark:
        fs, path = url_to_fs(url)
        try:
            with fs.open(path, "r") as handle:
                raw = json.load(handle)
        except FileNotFoundError:
            return cls(url, location)
        except (OSError, ValueError) as exc:
            raise DataLoadError(f"watermark {url} is unreadable ({exc}); move it away") from exc
        if raw.get("location") != location:
            raise DataLoadError(
                f"watermark {url} belongs to {raw.get('location')!r}, not {location!r}"
            )
        seen = {u: (int(s), str(v)) for u, (s, v) in raw.get("seen", {}).items()}
        return cls(url, location, seen, exists=True)

    def save(self) -> None:
        """Write the watermark whole: to a temporary name, then moved over the old one."""
        fs, path = url_to_fs(self.url)
        fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        body = {"location": self.location, "seen": {u: list(sv) for u, sv in self.seen.items()}}
        tmp = f"{path}.tmp"
        with fs.open(tmp, "w") as handle:
            json.dump(body, handle, indent=1, sort_keys=True)
        fs.mv(tmp, path)
        self.exists = True


@dataclass(frozen=True)
class Scan:
    """One look at a location.

    Attributes:
        new: Files never seen before, stable across both looks: announce these.
        changed: Files seen before whose size or version changed, stable: announce these too.
        unsettled: Files that changed between the two looks: still being written.
        gone: Files in the watermark that are no longer there.
        current: Everything stable the location holds now (the next watermark).
    """

    new: list[FileInfo]
    changed: list[FileInfo]
    unsettled: list[str]
    gone: list[str]
    current: Seen


def _look(location: str, fmt: str) -> dict[str, FileInfo]:
    try:
        return {f.url: f for f in list_data_files(location, fmt)}
    except DataLoadError as exc:
        if str(exc).startswith("no "):  # an empty or not yet created folder: nothing new
            logger.info("Nothing to watch at %s yet: %s", location, exc)
            return {}
        raise


def scan(
    location: str, watermark: Watermark, fmt: str = "auto", settle_s: float = 2.0
) -> Scan:
    """Compare the location against the watermark (see the module's docstring)."""
    first = _look(location, fmt)
    fresh = {u for u, f in first.items() if watermark.seen.get(u) != (f.size, f.version)}
    second = first
    if fresh and settle_s > 0:
        time.sleep(settle_s)
        second = _look(location, fmt)
    def key(f: FileInfo | None) -> tuple[int, str] | None:
        return None if f is None else (f.size, f.version)

    unsettled = sorted(u for u in fresh if key(second.get(u)) != key(first[u]))
    stable = {u: f for u, f in second.items() if u not in unsettled}
    new = [stable[u] for u in sorted(fresh) if u in stable and u not in watermark.seen]
    changed = [stable[u] for u in sorted(fresh) if u in stable and u in watermark.seen]
    gone = sorted(set(watermark.seen) - set(second))
    current = {u: (f.size, f.version) for u, f in stable.items()}
    # a file still being written keeps its old watermark entry (if any) until it settles
    current.update({u: watermark.seen[u] for u in unsettled if u in watermark.seen})
    return Scan(new, changed, unsettled, gone, current)
