"""Statements run on asyncpg itself: written once with SQLAlchemy, compiled once for asyncpg.

SQLAlchemy's execution of a statement (its bind processing, cursor and result objects) costs
about twice asyncpg's own on this path (docs/benchmarks.md, ninth round), so the statements
a request or a batch runs many times a second go to the pooled connection's asyncpg
connection directly, each prepared once per connection by asyncpg's statement cache.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, cast

import asyncpg
from sqlalchemy import ClauseElement
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.sql.compiler import SQLCompiler

_ASYNCPG = asyncpg_dialect()  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class Prepared:
    """A statement as asyncpg takes it: SQL with $n parameters, and the name of each n."""

    sql: str
    names: tuple[str, ...]
    # The values the statement itself holds (a literal SQLAlchemy binds, say), by name.
    fixed: Mapping[str, Any]

    def arguments(self, values: Mapping[str, Any]) -> list[Any]:
        return [self.fixed[name] if name in self.fixed else values[name] for name in self.names]

    async def fetch(self, conn: asyncpg.Connection, /, **values: Any) -> list[asyncpg.Record]:
        records: list[asyncpg.Record] = await conn.fetch(self.sql, *self.arguments(values))
        return records

    async def execute(self, conn: asyncpg.Connection, /, **values: Any) -> None:
        # Not conn.execute: without arguments, it would send the statement unprepared.
        await conn.fetch(self.sql, *self.arguments(values))


def prepare(statement: ClauseElement) -> Prepared:
    """``statement`` compiled for asyncpg. Its parameters need no conversion on the way:
    SQLAlchemy's asyncpg dialect hands UUIDs, datetimes, numbers and lists of strings to asyncpg
    as they are (the casts written into the SQL tell PostgreSQL their types)."""
    compiled = cast(SQLCompiler, statement.compile(dialect=_ASYNCPG))
    names = tuple(compiled.positiontup or ())
    binds = {name: compiled.binds[name] for name in names}
    fixed = {name: bind.effective_value for name, bind in binds.items() if not bind.required}
    return Prepared(compiled.string, names, fixed)


async def driver(conn: AsyncConnection) -> asyncpg.Connection:
    """The asyncpg connection under a pooled SQLAlchemy connection."""
    return _driver_of(await conn.get_raw_connection())


def _driver_of(pooled: PoolProxiedConnection) -> asyncpg.Connection:
    raw = pooled.driver_connection
    if raw is None:
        raise RuntimeError("the pooled connection has no asyncpg connection (closed)")
    return raw


# What asyncpg raises when the server ended the session or the connection broke mid-statement
# (besides leaving the connection closed, which is checked too).
_CONNECTION_LOST = (
    asyncpg.PostgresConnectionError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.ProtocolError,
)


@asynccontextmanager
async def driver_transaction(
    engine: AsyncEngine, before: Callable[[asyncpg.Connection], Awaitable[None]] | None = None
) -> AsyncIterator[asyncpg.Connection]:
    """A transaction of asyncpg's own on one of the engine's pooled connections; ``before``,
    the connection's set-up, runs first, outside the transaction.

    SQLAlchemy sees none of its statements, so it cannot tell when one failed with the
    connection: a transaction that fails for any reason gives its connection up (SQLAlchemy
    closes it) rather than back to the pool, where it may be dead or, cancelled during its
    rollback, still in the transaction. One that lost its connection also marks the pool's
    older connections for replacement at their next checkout, as SQLAlchemy does on a
    disconnect it sees: lost with the server (a restart), each would fail a transaction first.
    """
    async with engine.connect() as conn:
        pooled = await conn.get_raw_connection()
        raw = _driver_of(pooled)
        try:
            if before is not None:
                await before(raw)
            async with raw.transaction():
                yield raw
        except BaseException as e:
            if raw.is_closed() or isinstance(e, _CONNECTION_LOST):
                # SQLAlchemy's own step on a disconnect (Connection._handle_dbapi_exception):
                # no I/O, the connections are replaced as they are next checked out.
                engine.sync_engine.pool._invalidate(pooled, e, _checkin=False)
            # Shielded: cancelled once more meanwhile, it would go back to the pool as it is.
            await asyncio.shield(conn.invalidate())
            raise
