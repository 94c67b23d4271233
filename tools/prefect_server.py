"""`prefect server start` whose SQLite write transactions take the write lock when they begin
(``python -m tools.prefect_server server start --host ... --port ...``).

Prefect's server opens its write transactions on SQLite as ``BEGIN DEFERRED``: the transaction
reads first and asks for the write lock at its first write. If another connection of the same
server (the services that record task-run states and events) has written meanwhile, SQLite
cannot let the older snapshot write and answers "database is locked" at once, without waiting
for its busy timeout. The API turns that into a 503 and Prefect's client waits 2 s before it
tries again, so a flow stalls for 2 s now and then, most often at a task run's creation
(PrefectHQ/prefect#18934). Here every transaction the server opens for writing begins
``IMMEDIATE``: it waits for the lock (the server's busy timeout, 60 s) instead of failing, as
SQLite's documentation advises for transactions that will write. Reads outside a transaction
are unchanged.

The stack (`tools/stack.py`), the tests' server (`tests/conftest.py`) and the benchmarks start
Prefect's server through this module; the Prefect pin in requirements.lock is the version the
change is checked against (`tests/tools/test_prefect_server.py`).
"""

from __future__ import annotations

import sys
from typing import Any


def immediate_writes() -> None:
    """Make the SQLite configuration's write transactions ``BEGIN IMMEDIATE``."""
    from prefect.server.database.configurations import (  # noqa: PLC0415 - server only
        AioSqliteConfiguration,
    )

    begin = AioSqliteConfiguration.begin_transaction
    if getattr(begin, "immediate", False):
        return

    def begin_immediate(self: Any, session: Any, with_for_update: bool = False) -> Any:
        return begin(self, session, with_for_update=True)

    begin_immediate.immediate = True  # type: ignore[attr-defined]
    AioSqliteConfiguration.begin_transaction = begin_immediate  # type: ignore[method-assign]


def create_app() -> Any:
    """Prefect's ASGI app after the change, for ``uvicorn --factory
    tools.prefect_server:create_app`` (the tests' temporary server runs this way)."""
    immediate_writes()
    from prefect.server.api.server import create_app as prefect_app  # noqa: PLC0415

    return prefect_app()


def command(*args: str) -> list[str]:
    """The command line that runs Prefect's CLI with `args` through this module."""
    return [sys.executable, "-m", "tools.prefect_server", *args]


def main() -> None:
    """Prefect's own CLI (`prefect ...` with this process's arguments), after the change."""
    immediate_writes()
    from prefect.cli import app  # noqa: PLC0415

    sys.argv[0] = "prefect"
    sys.exit(app())


if __name__ == "__main__":
    main()
