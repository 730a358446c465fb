"""Set-based writes of a folded batch, one transaction a batch (PostgresStore).

``upsert_executions`` is ``fold.merge(stored_row, batch_row)`` written in SQL: each part of
the row is taken from whichever side wins it, by the same keys as core/fold.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import fields
from uuid import UUID

import orjson
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from agent_history.projector.core.fold import INPUT_FROM_QUEUED, INPUT_FROM_STARTED, Execution
from agent_history.projector.core.names import Name

_LAST_ID = "ffffffff-ffff-ffff-ffff-ffffffffffff"
_NO_INPUT = INPUT_FROM_QUEUED + 1


def _input_key(row: str) -> str:
    return (
        f"(COALESCE({row}.input_rank, {_NO_INPUT}), "
        f"COALESCE({row}.input_time, 'infinity'::timestamptz), "
        f"COALESCE({row}.input_event_id, '{_LAST_ID}'::uuid))"
    )


# The batch's row (EXCLUDED) wins the input / the terminal part from the stored row (t).
_INPUT_NEW = f"({_input_key('EXCLUDED')} < {_input_key('t')})"
_TERMINAL_NEW = (
    "(EXCLUDED.terminal_event_id IS NOT NULL AND (t.terminal_event_id IS NULL OR "
    "(EXCLUDED.execution_end, EXCLUDED.terminal_event_id) "
    "< (t.execution_end, t.terminal_event_id)))"
)
_T_STARTED = f"COALESCE(t.input_rank = {INPUT_FROM_STARTED}, false)"
_NEW_STARTED = f"COALESCE(EXCLUDED.input_rank = {INPUT_FROM_STARTED}, false)"


def _from_input(col: str) -> str:
    return f"{col} = CASE WHEN {_INPUT_NEW} THEN EXCLUDED.{col} ELSE t.{col} END"


def _from_terminal(col: str) -> str:
    return f"{col} = CASE WHEN {_TERMINAL_NEW} THEN EXCLUDED.{col} ELSE t.{col} END"


def _from_ids_winner(col: str) -> str:
    return (
        f"{col} = CASE WHEN {_INPUT_NEW} THEN EXCLUDED.{col} "
        f"WHEN t.input_rank IS NOT NULL THEN t.{col} "
        f"WHEN {_TERMINAL_NEW} THEN EXCLUDED.{col} ELSE t.{col} END"
    )


_UPSERT_EXECUTIONS = text(f"""
INSERT INTO agent_executions AS t (
    id, agent_id, user_id, status, execution_start, execution_end, input_data, output_data,
    error_message, input_rank, input_time, input_event_id, terminal_event_id)
SELECT * FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS u(
    id uuid, agent_id uuid, user_id uuid, status text, execution_start timestamptz,
    execution_end timestamptz, input_data jsonb, output_data jsonb, error_message text,
    input_rank smallint, input_time timestamptz, input_event_id uuid, terminal_event_id uuid)
ON CONFLICT (id) DO UPDATE SET
    {_from_ids_winner("agent_id")},
    {_from_ids_winner("user_id")},
    status = CASE WHEN {_TERMINAL_NEW} THEN EXCLUDED.status
                  WHEN t.terminal_event_id IS NOT NULL THEN t.status
                  WHEN {_T_STARTED} OR {_NEW_STARTED} THEN 'running'
                  ELSE 'pending' END,
    execution_start = CASE WHEN {_T_STARTED} = {_NEW_STARTED}
                               THEN LEAST(t.execution_start, EXCLUDED.execution_start)
                           WHEN {_T_STARTED} THEN t.execution_start
                           ELSE EXCLUDED.execution_start END,
    {_from_input("input_data")},
    {_from_input("input_rank")},
    {_from_input("input_time")},
    {_from_input("input_event_id")},
    {_from_terminal("execution_end")},
    {_from_terminal("output_data")},
    {_from_terminal("error_message")},
    {_from_terminal("terminal_event_id")},
    updated_at = now()
-- Only when something can change: a duplicate leaves the row (and its updated_at) alone.
WHERE {_INPUT_NEW} OR {_TERMINAL_NEW} OR EXCLUDED.execution_start < t.execution_start
""")


def _reference_upsert(table: str) -> str:
    return f"""
INSERT INTO {table} AS t (id, name, name_time)
SELECT * FROM unnest(CAST(:id AS uuid[]), CAST(:name AS text[]), CAST(:name_time AS timestamptz[]))
ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, name_time = EXCLUDED.name_time,
                               updated_at = now()
WHERE EXCLUDED.name IS NOT NULL
  AND (t.name_time IS NULL OR (EXCLUDED.name_time, EXCLUDED.name) > (t.name_time, t.name))
"""


_UPSERT_AGENTS = text(_reference_upsert("agents"))
_UPSERT_USERS = text(_reference_upsert("users"))


def _rows_json(rows: list[Execution]) -> str:
    """The rows as one JSON array of objects named like the columns (jsonb_to_recordset)."""
    try:
        return orjson.dumps(rows).decode()
    except TypeError:  # integers beyond 64 bits: valid JSON, and jsonb keeps them exactly
        return json.dumps([{f: getattr(r, f) for f in _FIELDS} for r in rows], default=str)


_FIELDS = [f.name for f in fields(Execution)]


async def upsert_references(
    conn: AsyncConnection, agents: Mapping[UUID, Name], users: Mapping[UUID, Name]
) -> None:
    """Make sure every referenced agent and user exists, with its newest known name."""
    for statement, names in ((_UPSERT_AGENTS, agents), (_UPSERT_USERS, users)):
        if not names:
            continue
        ids = sorted(names)  # one lock order for every projector: no deadlocks between them
        await conn.execute(
            statement,
            {
                "id": ids,
                "name": [names[i].name for i in ids],
                "name_time": [names[i].time for i in ids],
            },
        )


async def upsert_executions(conn: AsyncConnection, rows: Iterable[Execution]) -> None:
    """Merge each batch row into the stored row with the same id (insert when there is none)."""
    # In id order, one lock order for every projector (UUID.int orders as PostgreSQL does).
    ordered = sorted(rows, key=lambda r: r.id.int)
    if not ordered:
        return
    await conn.execute(_UPSERT_EXECUTIONS, {"rows": _rows_json(ordered)})


_LOCK_CHECKPOINTS = text("""
SELECT partition, next_offset FROM projector_checkpoints
WHERE consumer_group = :group AND topic = :topic AND partition = ANY(CAST(:partitions AS int[]))
ORDER BY partition
FOR UPDATE
""")

_SAVE_CHECKPOINTS = text("""
INSERT INTO projector_checkpoints AS c (consumer_group, topic, partition, next_offset,
                                        dead_lettered)
SELECT :group, :topic, p, o, d
FROM unnest(CAST(:partitions AS int[]), CAST(:offsets AS bigint[]), CAST(:dead AS bigint[]))
     AS u(p, o, d)
ON CONFLICT (consumer_group, topic, partition) DO UPDATE
SET next_offset = GREATEST(c.next_offset, EXCLUDED.next_offset),
    dead_lettered = c.dead_lettered + EXCLUDED.dead_lettered,
    updated_at = now()
""")


async def lock_checkpoints(
    conn: AsyncConnection, group: str, topic: str, partitions: Iterable[int]
) -> dict[int, int]:
    """The stored next offset of each partition, locked until the transaction ends."""
    result = await conn.execute(
        _LOCK_CHECKPOINTS, {"group": group, "topic": topic, "partitions": sorted(partitions)}
    )
    return {row.partition: row.next_offset for row in result}


async def save_checkpoints(
    conn: AsyncConnection,
    group: str,
    topic: str,
    next_offsets: Mapping[int, int],
    dead_lettered: Mapping[int, int],
) -> None:
    parts = sorted(next_offsets)
    if not parts:
        return
    await conn.execute(
        _SAVE_CHECKPOINTS,
        {
            "group": group,
            "topic": topic,
            "partitions": parts,
            "offsets": [next_offsets[p] for p in parts],
            "dead": [dead_lettered.get(p, 0) for p in parts],
        },
    )


_ASYNCHRONOUS_COMMIT = text("SET LOCAL synchronous_commit = off")
_READ_CHECKPOINTS = text(
    "SELECT partition, next_offset FROM projector_checkpoints "
    "WHERE consumer_group = :g AND topic = :t"
)


class PostgresStore:
    """One projector's side of the database (its group and topic): a transaction a batch."""

    def __init__(
        self, engine: AsyncEngine, group: str, topic: str, *, synchronous_commit: bool
    ) -> None:
        self._engine = engine
        self._group = group
        self._topic = topic
        self._synchronous_commit = synchronous_commit

    async def stored_checkpoints(self) -> dict[int, int]:
        async with self._engine.connect() as conn:
            result = await conn.execute(_READ_CHECKPOINTS, {"g": self._group, "t": self._topic})
            return {row.partition: row.next_offset for row in result}

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PostgresTransaction]:
        async with self._engine.begin() as conn:
            if not self._synchronous_commit:
                # Safe: the checkpoint commits with the rows, so a commit lost in a database
                # crash loses both, and the next batch finds the stored checkpoint behind it
                # and rewinds to it (plan_batch), as after any failure.
                await conn.execute(_ASYNCHRONOUS_COMMIT)
            yield PostgresTransaction(conn, self._group, self._topic)


class PostgresTransaction:
    """The statements of one batch, in one transaction."""

    def __init__(self, conn: AsyncConnection, group: str, topic: str) -> None:
        self._conn = conn
        self._group = group
        self._topic = topic

    async def lock_checkpoints(self, partitions: Iterable[int]) -> dict[int, int]:
        return await lock_checkpoints(self._conn, self._group, self._topic, partitions)

    async def write(
        self,
        agents: Mapping[UUID, Name],
        users: Mapping[UUID, Name],
        rows: Iterable[Execution],
        writing: asyncio.Event,
    ) -> None:
        await upsert_references(self._conn, agents, users)
        writing.set()
        await upsert_executions(self._conn, rows)

    async def save_checkpoints(
        self, next_offsets: Mapping[int, int], dead_lettered: Mapping[int, int]
    ) -> None:
        await save_checkpoints(self._conn, self._group, self._topic, next_offsets, dead_lettered)
