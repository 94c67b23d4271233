"""Waiting for a detached recorder or replay process: it says in its log when it is done."""

from __future__ import annotations

import time
from pathlib import Path


def wait_for_line(log: Path, text: str, wait_s: float = 120) -> str:
    """The log's text once it holds `text` (a process writes it as its last line)."""
    deadline = time.monotonic() + wait_s
    while True:
        found = log.read_text() if log.exists() else ""
        if text in found:
            return found
        assert time.monotonic() < deadline, f"no '{text}' in {log} after {wait_s} s: {found}"
        time.sleep(0.2)
