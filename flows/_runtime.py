"""What a flow process changes in its own runtime, installed in one place.

Every flow module calls `install()` at import, so a flow run behaves the same whether it starts
from the `mlops` command, a Prefect worker or a test:

- `flows/_engine.py`: a flow run ends when its work does, not on the next whole second
  (Prefect's heartbeat join; warns when the Prefect it was written for is not the one here);
- `flows/_exit.py`: the process exits without a last full collection of its heap;
- `tasks/_logs.py`: the run loggers show this project's own errors once, without a traceback;
- Arrow allocates from the C library's allocator (`use_system_allocator`), unless
  `ARROW_DEFAULT_MEMORY_POOL` chooses another.
"""

from __future__ import annotations

import os

import pyarrow as pa

from flows import _engine, _exit
from tasks import _logs


def use_system_allocator() -> None:
    """Give the buffers Arrow frees back to the system at once.

    pyarrow's default pool (mimalloc) keeps what Arrow's reader threads freed for reuse, and
    `pyarrow.MemoryPool.release_unused` reaches only the calling thread's share, so what loading
    left behind is carried into every later stage's peak (figures in docs/design-decisions.md).
    """
    if not os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        pa.set_memory_pool(pa.system_memory_pool())


def install() -> None:
    _engine.install()
    _exit.install()
    _logs.install()
    use_system_allocator()
