"""The read model as the projector writes it: set-based statements, one transaction a batch."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from uuid import UUID

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from agent_history.projector.announce import announce_rows
from agent_history.projector.checkpoints import (
    lock_checkpoints,
    read_checkpoints,
    save_checkpoints,
)
from agent_history.projector.core.fold import Execution
from agent_history.projector.core.names import Name
from agent_history.projector.erasure import count_dropped, erased_among
from agent_history.projector.merge import stage_rows, upsert_executions
from agent_history.read_model.prepared import driver_transaction, prepare


def _reference_upsert(table: str) -> str:
    """``Name.newer`` (core/names.py) written in SQL: a name only ever moves forward."""
    return f"""
INSERT INTO {table} AS t (id, name, name_time)
SELECT * FROM unnest(CAST(:id AS uuid[]), CAST(:name AS text[]), CAST(:name_time AS timestamptz[]))
ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, name_time = EXCLUDED.name_time,
                               updated_at = now()
WHERE EXCLUDED.name IS NOT NULL
  AND (t.name_time IS NULL OR (EXCLUDED.name_time, EXCLUDED.name) > (t.name_time, t.name))
"""


_UPSERT_AGENTS = prepare(text(_reference_upsert("agents")))
_UPSERT_USERS = prepare(text(_reference_upsert("users")))


async def _upsert_references(
    conn: asyncpg.Connection, agents: Mapping[UUID, Name], users: Mapping[UUID, Name]
) -> None:
    """Make sure every referenced agent and user exists, with its newest known name."""
    for statement, names in ((_UPSERT_AGENTS, agents), (_UPSERT_USERS, users)):
        if not names:
            continue
        ids = sorted(names)  # one lock order for every projector: no deadlocks between them
        await statement.execute(
            conn,
            id=ids,
            name=[names[i].name for i in ids],
            name_time=[names[i].time for i in ids],
        )


async def write_changes(
    conn: asyncpg.Connection,
    agents: Mapping[UUID, Name],
    users: Mapping[UUID, Name],
    rows: Iterable[Execution],
    writing: asyncio.Event | None = None,
) -> None:
    """Write a batch's names, then its rows; ``writing`` is set as the rows' statement leaves.
    Within ``conn``'s transaction (write_transaction, or prepared.driver of a SQLAlchemy
    connection whose transaction has sent a statement already)."""
    await _upsert_references(conn, agents, users)
    await upsert_executions(conn, rows, writing)


@asynccontextmanager
async def write_transaction(
    engine: AsyncEngine, *, schema: str | None = None, asynchronous_commit: bool = False
) -> AsyncIterator[asyncpg.Connection]:
    """A transaction for write_changes, on asyncpg (driver_transaction), its connection given
    the table that a big batch's rows are copied into (merge.stage_rows); unqualified table
    names mean ``schema``'s, if given; with ``asynchronous_commit``, its commit returns before
    its changes reach the disk."""
    async with driver_transaction(engine, stage_rows) as conn:
        settings = [_schema_setting(schema)] if schema is not None else []
        if asynchronous_commit:
            settings.append("SET LOCAL synchronous_commit = off")
        if settings:
            await conn.execute("; ".join(settings))
        yield conn


def _schema_setting(schema: str) -> str:
    """The statement after which unqualified table names mean ``schema``'s tables, until the
    transaction ends."""
    return f"SET LOCAL search_path TO {schema}"


async def use_schema(conn: AsyncConnection, schema: str) -> None:
    await conn.execute(text(_schema_setting(schema)))


class PostgresStore:
    """One projector's side of the database (its group and topic): a transaction a batch.

    Its engine may commit asynchronously (``synchronous_commit`` off, the default setting):
    safe, as the checkpoint commits with the rows, so a commit lost in a database crash loses
    both, and the next batch finds the stored checkpoint behind it and rewinds to it
    (plan_batch), as after any failure.
    """

    def __init__(self, engine: AsyncEngine, group: str, topic: str) -> None:
        self._engine = engine
        self._group = group
        self._topic = topic

    async def stored_checkpoints(self) -> dict[int, int]:
        async with self._engine.connect() as conn:
            return await read_checkpoints(conn, self._group, self._topic)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PostgresTransaction]:
        async with write_transaction(self._engine) as conn:
            yield PostgresTransaction(conn, self._group, self._topic)


class PostgresTransaction:
    """The statements of one batch, in one transaction, each straight on asyncpg (prepared.py):
    a batch of a projector that keeps up is a few dozen events, and SQLAlchemy's execution of
    its statements was a third of the projector's CPU (docs/benchmarks.md, eighth round)."""

    def __init__(self, conn: asyncpg.Connection, group: str, topic: str) -> None:
        self._conn = conn
        self._group = group
        self._topic = topic

    async def lock_checkpoints(self, partitions: Iterable[int]) -> dict[int, int]:
        return await lock_checkpoints(self._conn, self._group, self._topic, partitions)

    async def erased_among(self, users: Iterable[UUID]) -> frozenset[UUID]:
        return await erased_among(self._conn, users)

    async def count_dropped(self, dropped: Mapping[UUID, int]) -> None:
        await count_dropped(self._conn, dropped)

    async def write(
        self,
        agents: Mapping[UUID, Name],
        users: Mapping[UUID, Name],
        rows: Iterable[Execution],
        writing: asyncio.Event,
    ) -> None:
        rows = list(rows)
        await write_changes(self._conn, agents, users, rows, writing)
        # Delivered to the API's streams on commit (announce.py).
        await announce_rows(self._conn, rows)

    async def save_checkpoints(
        self, next_offsets: Mapping[int, int], dead_lettered: Mapping[int, int]
    ) -> None:
        await save_checkpoints(self._conn, self._group, self._topic, next_offsets, dead_lettered)
