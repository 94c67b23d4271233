"""The Prefect server's SQLite write transactions wait for the lock instead of failing."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import sqlalchemy as sa
from prefect.server.database.configurations import AioSqliteConfiguration
from sqlalchemy.exc import OperationalError

from tools import prefect_server


async def _race(folder: Path) -> list[int]:
    """A reads, B writes and commits, then A writes: the pattern of Prefect's task-run
    creation while its services record states. Returns the rows written, in commit order."""
    config = AioSqliteConfiguration(connection_url=f"sqlite+aiosqlite:///{folder / 'db.sqlite'}")
    engine = await config.engine()
    try:
        async with engine.begin() as connection:
            await connection.execute(sa.text("CREATE TABLE t (x INTEGER)"))
        a, b = await config.session(engine), await config.session(engine)

        async def write_b() -> None:
            async with config.begin_transaction(b):
                await b.execute(sa.text("INSERT INTO t VALUES (2)"))

        async with config.begin_transaction(a):
            await a.execute(sa.text("SELECT count(*) FROM t"))
            other = asyncio.create_task(write_b())
            await asyncio.sleep(0.3)  # B commits now, or waits for A's lock
            await a.execute(sa.text("INSERT INTO t VALUES (1)"))
        await other
        await a.close()
        await b.close()
        async with engine.connect() as connection:
            return [row[0] for row in await connection.execute(sa.text("SELECT x FROM t"))]
    finally:
        await engine.dispose()


def test_prefects_deferred_transaction_fails_at_once_when_another_wrote(tmp_path: Path) -> None:
    # The failure the module works around, on the pinned Prefect: without the change, A's
    # write after B's commit is refused without waiting for the busy timeout.
    with pytest.raises(OperationalError, match="database is locked"):
        asyncio.run(_race(tmp_path))


def test_immediate_writes_make_the_second_writer_wait(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(AioSqliteConfiguration, "begin_transaction",
                        AioSqliteConfiguration.begin_transaction)  # restored after the test
    prefect_server.immediate_writes()
    wrapped = AioSqliteConfiguration.begin_transaction
    prefect_server.immediate_writes()
    assert AioSqliteConfiguration.begin_transaction is wrapped  # not wrapped twice
    assert asyncio.run(_race(tmp_path)) == [1, 2]  # A held the lock from its BEGIN; B waited


def test_the_command_runs_prefects_cli_through_this_module() -> None:
    command = prefect_server.command("server", "start")
    assert command[1:] == ["-m", "tools.prefect_server", "server", "start"]
