"""benchmarks._measure: the peak memory of a process tree counts the children's memory, and
its PSS counts the pages they share once."""

from __future__ import annotations

import os
import textwrap

import psutil

from benchmarks._measure import pss_bytes, run_measured
from tests.conftest import ROOT

CHILD_BYTES = 300 * 2**20


def test_the_tree_peak_counts_a_child_process(tmp_path):
    (tmp_path / "parent_of_a_big_child.py").write_text(textwrap.dedent(f"""
        import subprocess, sys
        from benchmarks._measure import report
        hold = "x = bytearray({CHILD_BYTES}); x[::4096] = b'1' * len(x[::4096]); "
        subprocess.run([sys.executable, "-c", hold + "import time; time.sleep(1)"], check=True)
        report()
    """))
    path = os.pathsep.join([str(tmp_path), str(ROOT)])
    result = run_measured(["parent_of_a_big_child"], env={"PYTHONPATH": path}, tree=True)
    assert result["peak_rss_bytes"] < CHILD_BYTES  # the process's own peak misses the child
    assert result["tree_peak_rss_bytes"] >= CHILD_BYTES  # the child's bytes, touched, and more
    assert result["tree_peak_pss_bytes"] >= CHILD_BYTES  # its own pages: PSS counts them too


def test_the_tree_pss_counts_shared_pages_once(tmp_path):
    """A forked child maps its parent's touched pages copy-on-write: RSS summed counts them
    twice, PSS summed once (half in each process)."""
    (tmp_path / "parent_sharing_with_a_child.py").write_text(textwrap.dedent(f"""
        import os, time
        from benchmarks._measure import report
        x = bytearray({CHILD_BYTES}); x[::4096] = b'1' * len(x[::4096])
        pid = os.fork()
        if pid == 0:
            time.sleep(1.5)
            os._exit(0)
        os.waitpid(pid, 0)
        report()
    """))
    path = os.pathsep.join([str(tmp_path), str(ROOT)])
    result = run_measured(["parent_sharing_with_a_child"], env={"PYTHONPATH": path}, tree=True)
    assert result["tree_peak_rss_bytes"] >= 2 * CHILD_BYTES
    assert CHILD_BYTES <= result["tree_peak_pss_bytes"] < 1.5 * CHILD_BYTES


def test_pss_reads_this_process():
    pss, rss = pss_bytes(os.getpid()), psutil.Process().memory_info().rss
    assert 0 < pss <= rss


def test_the_own_peak_is_not_the_parents(tmp_path):
    """A small program started from a process holding more memory reports its own peak."""
    hold = bytearray(CHILD_BYTES)
    hold[::4096] = b"1" * len(hold[::4096])  # touched: resident in this (the parent) process
    (tmp_path / "small.py").write_text("from benchmarks._measure import report\nreport()\n")
    path = os.pathsep.join([str(tmp_path), str(ROOT)])
    result = run_measured(["small"], env={"PYTHONPATH": path})
    assert result["peak_rss_bytes"] < CHILD_BYTES
    del hold


def test_without_tree_only_the_process_reports(tmp_path):
    (tmp_path / "small.py").write_text("from benchmarks._measure import report\nreport(n=1)\n")
    path = os.pathsep.join([str(tmp_path), str(ROOT)])
    result = run_measured(["small"], env={"PYTHONPATH": path})
    assert result["n"] == 1 and "tree_peak_rss_bytes" not in result
