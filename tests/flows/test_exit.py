"""flows/_exit.py: a flow process freezes its heap at exit, after Prefect's exit handlers."""

from __future__ import annotations

import subprocess
import sys

# The handler registered first runs last: it sees what the exit handlers did before it.
_PROGRAM = """
import atexit, gc, sys
atexit.register(lambda: print("frozen at exit:", gc.get_freeze_count() > 0, flush=True))
import flows.training  # importing a flow installs the freeze
print("frozen before exit:", gc.get_freeze_count() > 0, flush=True)
sys.exit(3)
"""


def test_a_flow_process_freezes_its_heap_at_exit_and_keeps_its_exit_code():
    done = subprocess.run([sys.executable, "-c", _PROGRAM], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 3, done.stderr
    assert done.stdout.split("\n")[:2] == ["frozen before exit: False", "frozen at exit: True"]
