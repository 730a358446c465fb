"""Transactions straight on asyncpg (read_model/prepared.py): a failed one leaves no connection
behind in the pool that would fail the next one too."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from agent_history.read_model.db import DatabaseSettings, make_engine
from agent_history.read_model.prepared import driver_transaction

pytestmark = pytest.mark.integration


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    # As the live projector's: no ping at checkout, one pooled connection.
    settings = DatabaseSettings(database_url=database_url, database_pool_size=1)
    e = make_engine(settings, pre_ping=False)
    yield e
    await e.dispose()


# Whatever asyncpg makes of the server's farewell, arriving before or during the statement.
_DEAD = (asyncpg.InterfaceError, asyncpg.InternalClientError, asyncpg.PostgresError, OSError)


async def _terminate(database_url: str, pids: list[int]) -> None:
    admin = await asyncpg.connect(database_url.replace("+asyncpg", ""))
    try:
        for pid in pids:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await admin.close()


async def _backend(engine: AsyncEngine) -> int:
    async with driver_transaction(engine) as conn:
        pid: int = await conn.fetchval("SELECT pg_backend_pid()")
        return pid


async def test_a_connection_that_died_in_the_pool_fails_one_transaction_only(
    engine: AsyncEngine, database_url: str
) -> None:
    before = await _backend(engine)
    assert await _backend(engine) == before  # the pool hands the same connection back
    await _terminate(database_url, [before])
    # Without a ping at checkout, the dead connection fails its transaction ...
    with pytest.raises(_DEAD):
        await _backend(engine)
    # ... and only that one.
    assert await _backend(engine) != before


async def test_a_lost_connection_has_the_pools_older_ones_replaced_too(database_url: str) -> None:
    # Two pooled connections, both lost with the server (terminated, as a restart does), and
    # one checked out throughout (as replay's lock session is), which stays as it is.
    settings = DatabaseSettings(database_url=database_url, database_pool_size=3)
    engine = make_engine(settings, pre_ping=False)
    try:
        async with engine.connect() as held:
            async with driver_transaction(engine) as one, driver_transaction(engine) as two:
                pids = [await c.fetchval("SELECT pg_backend_pid()") for c in (one, two)]
            await _terminate(database_url, pids)
            with pytest.raises(_DEAD):
                await _backend(engine)
            # The other dead one is replaced too: the next transaction gets a new connection.
            assert await _backend(engine) not in pids
            assert await held.scalar(text("SELECT 1")) == 1
    finally:
        await engine.dispose()


async def _run(engine: AsyncEngine, statement: str) -> None:
    async with driver_transaction(engine) as conn:
        await conn.execute(statement)


async def test_a_failed_statement_gives_its_connection_up(engine: AsyncEngine) -> None:
    before = await _backend(engine)
    with pytest.raises(asyncpg.DivisionByZeroError):
        await _run(engine, "SELECT 1 / 0")
    assert await _backend(engine) != before


async def test_a_cancelled_transaction_gives_its_connection_up(engine: AsyncEngine) -> None:
    before = await _backend(engine)
    task = asyncio.create_task(_run(engine, "SELECT pg_sleep(10)"))
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await _backend(engine) != before
