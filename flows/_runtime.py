"""What a flow process changes in its own runtime, installed in one place.

Every flow module calls `install()` at import, so a flow run behaves the same whether it starts
from the `mlops` command, a Prefect worker or a test:

- `flows/_engine.py`: a flow run ends when its work does, not on the next whole second
  (Prefect's heartbeat join; warns when the Prefect it was written for is not the one here);
- `flows/_exit.py`: the process exits without a last full collection of its heap;
- `tasks/_logs.py`: the run loggers show this project's own errors once, without a traceback.
"""

from __future__ import annotations

from flows import _engine, _exit
from tasks import _logs


def install() -> None:
    _engine.install()
    _exit.install()
    _logs.install()
