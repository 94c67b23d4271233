"""The release history: appended, never rewritten, read back in order, on disk and elsewhere."""

from __future__ import annotations

import threading
import uuid

from mlops.registry.local import LocalRegistry
from mlops.registry.releases import HISTORY_FILE, Release


def _entry(n: int, kind: str = "promotion") -> Release:
    return Release(kind, "toy", n, n - 1 or None, n, {"blue": 100}, {"green": 100},
                   reason=f"run {n} | with a pipe", flow_run_id=f"run-{n}",
                   at=f"2026-01-01T00:00:{n:02d}+00:00")


def test_appends_from_many_writers_keep_every_line_and_what_was_there(tmp_path):
    registry = LocalRegistry(str(tmp_path))
    registry.append_release(_entry(1))
    path = tmp_path / "toy" / HISTORY_FILE
    first = path.read_bytes()

    def write(start: int) -> None:
        for n in range(start, start + 25):
            LocalRegistry(str(tmp_path)).append_release(_entry(n))

    threads = [threading.Thread(target=write, args=(s,)) for s in (2, 27)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert path.read_bytes().startswith(first)  # appended, never rewritten
    history = registry.releases("toy")
    assert [r.version for r in history] == list(range(1, 52))
    assert history[0] == _entry(1)


def test_an_object_store_keeps_one_object_per_entry():
    url = f"memory://releases-{uuid.uuid4().hex}"
    registry = LocalRegistry(url)
    for n in (3, 1, 2):
        registry.append_release(_entry(n, "rollback"))
    assert [r.version for r in registry.releases("toy")] == [1, 2, 3]
    assert len(registry.fs.ls(f"{registry.root}/toy/releases", detail=False)) == 3
    assert registry.releases("other") == []
