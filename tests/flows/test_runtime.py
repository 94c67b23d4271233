"""flows/_runtime.py: what importing a flow changes in the process."""

from __future__ import annotations

import os
import subprocess
import sys

_PROGRAM = "import flows.training, pyarrow; print(pyarrow.default_memory_pool().backend_name)"


def _pool(**env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    done = subprocess.run([sys.executable, "-c", _PROGRAM], capture_output=True, text=True,
                          timeout=120, env={**clean, **env}, check=True)
    return done.stdout.strip()


def test_a_flow_process_allocates_arrow_memory_from_the_system():
    assert _pool() == "system"


def test_a_pool_named_in_the_environment_is_kept():
    assert _pool(ARROW_DEFAULT_MEMORY_POOL="mimalloc") == "mimalloc"
