"""benchmarks.bench_rollback --quick: one round of each flip, on real processes, reported.

The figures themselves are not judged here (a shared machine); what is checked is that each
flip really happened under load, the command on its warm path, and that the report says so.
"""

from __future__ import annotations

import pytest

from benchmarks.bench_rollback import COMMAND, RAW, main

pytestmark = [pytest.mark.slow, pytest.mark.service]


def test_quick_mode_times_the_command_and_the_raw_flip_under_load(tmp_path):
    out = tmp_path / "rollback.md"
    flips = main(["--quick", "--out", str(out), "--work", str(tmp_path / "work")])
    assert [f.how for f in flips] == [COMMAND, RAW]
    for f in flips:
        assert 0 < f.to_full_s and f.requests > 0, f
        assert f.failed == 0, f.failures
    command, raw = flips
    text = out.read_text()
    assert text.startswith("# Rollback benchmark\n\nMeasured ")
    assert f"| {COMMAND} | {command.to_full_s:.3f} | {command.to_full_s:.3f} |" in text
    assert f"| {RAW} | {raw.to_full_s:.3f} |" in text
    assert "| failed requests, all rounds | 0 | 0 | yes |" in text
