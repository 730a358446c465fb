"""``fold.merge`` written in SQL: the statement that merges a batch's rows into the table.

Each part of the stored row (t) is taken from whichever side wins it, the batch's row
(EXCLUDED) or the stored one, by the same keys as core/fold.py. A change to the fold is a change
here too; tests/integration/test_store.py holds the two equal.
"""

from __future__ import annotations

import asyncio
import json
import weakref
from collections.abc import Iterable
from dataclasses import fields
from decimal import Decimal
from operator import attrgetter

import asyncpg
import orjson
from sqlalchemy import text
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import JSONB

from agent_history.projector.core.fold import (
    INPUT_FROM_QUEUED,
    INPUT_FROM_STARTED,
    START_FROM_ANY,
    START_FROM_HEARTBEATS,
    START_FROM_STARTED,
    VERDICT_STATUS,
    Execution,
)
from agent_history.read_model.prepared import prepare
from agent_history.read_model.tables import agent_executions

_LAST_ID = "ffffffff-ffff-ffff-ffff-ffffffffffff"
_NO_INPUT = INPUT_FROM_QUEUED + 1


def _input_key(row: str) -> str:
    return (
        f"(COALESCE({row}.input_rank, {_NO_INPUT}), "
        f"COALESCE({row}.input_time, 'infinity'::timestamptz), "
        f"COALESCE({row}.input_event_id, '{_LAST_ID}'::uuid))"
    )


def _terminal_key(row: str) -> str:
    # A real end before any verdict, then by time and id (core/fold.py's _terminal_key).
    return f"({row}.status = '{VERDICT_STATUS}', {row}.execution_end, {row}.terminal_event_id)"


def _start_rank(row: str) -> str:
    """Execution.start_rank."""
    return (
        f"(CASE WHEN {row}.input_rank = {INPUT_FROM_STARTED} THEN {START_FROM_STARTED} "
        f"WHEN {row}.input_rank IS NOT NULL OR {row}.terminal_event_id IS NOT NULL "
        f"THEN {START_FROM_ANY} ELSE {START_FROM_HEARTBEATS} END)"
    )


def _heartbeat_key(row: str) -> str:
    return f"({row}.execution_start, {row}.agent_id, {row}.user_id)"


# The batch's row (EXCLUDED) wins the input / the terminal part from the stored row (t).
_INPUT_NEW = f"({_input_key('EXCLUDED')} < {_input_key('t')})"
_TERMINAL_NEW = (
    "(EXCLUDED.terminal_event_id IS NOT NULL AND (t.terminal_event_id IS NULL OR "
    f"{_terminal_key('EXCLUDED')} < {_terminal_key('t')}))"
)
_T_STARTED = f"COALESCE(t.input_rank = {INPUT_FROM_STARTED}, false)"
_NEW_STARTED = f"COALESCE(EXCLUDED.input_rank = {INPUT_FROM_STARTED}, false)"
_T_RANK, _NEW_RANK = _start_rank("t"), _start_rank("EXCLUDED")


def _from_input(col: str) -> str:
    return f"{col} = CASE WHEN {_INPUT_NEW} THEN EXCLUDED.{col} ELSE t.{col} END"


def _from_terminal(col: str) -> str:
    return f"{col} = CASE WHEN {_TERMINAL_NEW} THEN EXCLUDED.{col} ELSE t.{col} END"


def _from_ids_winner(col: str) -> str:
    return (
        f"{col} = CASE WHEN {_INPUT_NEW} THEN EXCLUDED.{col} "
        f"WHEN t.input_rank IS NOT NULL THEN t.{col} "
        f"WHEN {_TERMINAL_NEW} THEN EXCLUDED.{col} "
        f"WHEN t.terminal_event_id IS NOT NULL THEN t.{col} "
        # Heartbeats alone on both sides (else one of the above holds).
        f"WHEN EXCLUDED.terminal_event_id IS NULL "
        f"AND {_heartbeat_key('EXCLUDED')} < {_heartbeat_key('t')} THEN EXCLUDED.{col} "
        f"ELSE t.{col} END"
    )


# Every column the batch gives, in the order of Execution's fields, with its type in the
# read model's table.
_FIELDS = [f.name for f in fields(Execution)]
_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]
_TYPES = {f: agent_executions.c[f].type.compile(dialect=_DIALECT) for f in _FIELDS}
_TYPED = ", ".join(f"{name} {kind}" for name, kind in _TYPES.items())


def _upsert(rows: str) -> str:
    """The merge of the batch's rows, read from ``rows`` (a FROM item named u)."""
    return f"""
-- Has the rollup trigger fold the updated rows into the pass over the inserted ones (migration
-- 0014): one rewrite of an agent's rollup rows a batch instead of two. Set for the transaction,
-- before the triggers fire; the trigger clears it once used, and upsert_executions after the
-- statement (a table without the triggers, as replay's shadow while it loads, leaves it set).
-- In this statement rather than one of its own: the batch's write must be on its way, without
-- waiting for this process, once it lets the next batch be decoded (pipeline.py).
WITH one_rollup_pass AS MATERIALIZED (SELECT set_config('agent_history.upsert', 'on', true))
INSERT INTO agent_executions AS t ({", ".join(_FIELDS)})
SELECT u.* FROM one_rollup_pass, {rows}
ON CONFLICT (id) DO UPDATE SET
    {_from_ids_winner("agent_id")},
    {_from_ids_winner("user_id")},
    status = CASE WHEN {_TERMINAL_NEW} THEN EXCLUDED.status
                  WHEN t.terminal_event_id IS NOT NULL THEN t.status
                  WHEN {_T_STARTED} OR {_NEW_STARTED} THEN 'running'
                  ELSE 'pending' END,
    execution_start = CASE WHEN {_T_RANK} = {_NEW_RANK}
                               THEN LEAST(t.execution_start, EXCLUDED.execution_start)
                           WHEN {_T_RANK} < {_NEW_RANK} THEN t.execution_start
                           ELSE EXCLUDED.execution_start END,
    {_from_input("input_data")},
    {_from_input("timeout_ms")},
    {_from_input("model")},
    {_from_input("tags")},
    {_from_input("metadata")},
    {_from_input("parent_execution_id")},
    {_from_input("trace_id")},
    {_from_input("input_rank")},
    {_from_input("input_time")},
    {_from_input("input_event_id")},
    {_from_terminal("execution_end")},
    {_from_terminal("output_data")},
    {_from_terminal("error_message")},
    {_from_terminal("input_tokens")},
    {_from_terminal("output_tokens")},
    {_from_terminal("cost")},
    {_from_terminal("cost_currency")},
    {_from_terminal("terminal_event_id")},
    last_seen_at = GREATEST(t.last_seen_at, EXCLUDED.last_seen_at),
    updated_at = now()
-- Only when something can change: a duplicate leaves the row (and its updated_at) alone.
WHERE {_INPUT_NEW} OR {_TERMINAL_NEW}
   OR {_heartbeat_key("EXCLUDED")} < {_heartbeat_key("t")}
   OR EXCLUDED.last_seen_at > COALESCE(t.last_seen_at, '-infinity'::timestamptz)
"""


# The rows as one JSON document (_rows_json), which PostgreSQL parses.
_FROM_JSON = prepare(
    text(
        _upsert(
            "jsonb_to_recordset(CAST(convert_from(CAST(:rows AS bytea), 'UTF8') AS jsonb)) "
            f"AS u({_TYPED})"
        )
    )
)
# The rows copied (binary COPY, asyncpg's encoding) into a temporary table of the session:
# about a fifth less of PostgreSQL's CPU for a backlog's batches than parsing them as JSON,
# for a little more of this process's (docs/benchmarks.md, ninth round). Read in the order
# copied (a temporary table's heap, filled since it was last emptied); emptied after each
# merge, as a transaction may merge several batches (replay's catch-up), and by each commit.
_STAGED = "batch_rows"
_FROM_STAGED = prepare(text(_upsert(f"pg_temp.{_STAGED} AS u")))
_CREATE_STAGED = f"CREATE TEMPORARY TABLE IF NOT EXISTS {_STAGED} ({_TYPED}) ON COMMIT DELETE ROWS"
_MAY_STAGE = "SELECT has_database_privilege(current_database(), 'TEMPORARY')"
# Per connection: whether it has the table (a role may be refused temporary tables).
_STAGING: weakref.WeakKeyDictionary[asyncpg.Connection, bool] = weakref.WeakKeyDictionary()
# Batches of fewer rows go as JSON: the copy is one more round trip, which costs a projector
# that keeps up (a few dozen rows a batch) more than it saves (~7 us of CPU a row in all;
# docs/benchmarks.md, ninth round).
COPY_FROM = 100

# A later plain UPDATE in the transaction must not find the upsert's setting (migration 0014).
_CLEAR_UPSERT_SETTING = "SELECT set_config('agent_history.upsert', '', true)"
_CLEAR_STAGED = f"{_CLEAR_UPSERT_SETTING}; DELETE FROM pg_temp.{_STAGED}"


def _rows_json(rows: list[Execution]) -> bytes:
    """The rows as one JSON array of objects named like the columns (jsonb_to_recordset)."""
    return _json(rows)


def _json(value: object) -> bytes:
    try:
        return orjson.dumps(value, default=_decimal)
    except TypeError:  # integers beyond 64 bits: valid JSON, and jsonb keeps them exactly
        return json.dumps(value, default=_plain).encode()


def _plain(value: object) -> object:
    """What json makes of a row (its columns) and of any other value orjson writes."""
    if isinstance(value, Execution):
        return {f: getattr(value, f) for f in _FIELDS}
    return str(value)


def _decimal(value: object) -> str:
    """A cost, as the string of its digits: numeric reads it exactly."""
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError


_GET = attrgetter(*_FIELDS)
_PAYLOADS = [i for i, f in enumerate(_FIELDS) if isinstance(agent_executions.c[f].type, JSONB)]


def _records(rows: list[Execution]) -> list[list[object]]:
    """The rows as asyncpg copies them: each column's value, the payloads as JSON text."""
    records = []
    for row in rows:
        record = list(_GET(row))
        for i in _PAYLOADS:
            if (value := record[i]) is not None:
                record[i] = _json(value).decode()
        records.append(record)
    return records


async def stage_rows(conn: asyncpg.Connection) -> None:
    """Give the connection its table for batch rows, if it has none and may have one: outside
    a transaction (a rollback would take the table with it)."""
    if conn not in _STAGING:
        staged = bool(await conn.fetchval(_MAY_STAGE))
        if staged:
            await conn.execute(_CREATE_STAGED)
        _STAGING[conn] = staged


async def upsert_executions(
    conn: asyncpg.Connection, rows: Iterable[Execution], writing: asyncio.Event | None = None
) -> None:
    """Merge each batch row into the stored row with the same id (insert when there is none):
    copied into the connection's table for batch rows if stage_rows gave it one and they are
    COPY_FROM or more, else as JSON.
    ``writing`` is set as the merge leaves, after the copy: the copy is fed by this process,
    and would wait for the next batch's decoding (pipeline.py) if that began meanwhile."""
    # In id order, one lock order for every projector (UUID.int orders as PostgreSQL does).
    ordered = sorted(rows, key=lambda r: r.id.int)
    copied = len(ordered) >= COPY_FROM and _STAGING.get(conn, False)
    if copied:
        await conn.copy_records_to_table(
            _STAGED, schema_name="pg_temp", records=_records(ordered), columns=_FIELDS
        )
    if writing is not None:
        writing.set()
    if not ordered:
        return
    if copied:
        await _FROM_STAGED.execute(conn)
    else:
        await _FROM_JSON.execute(conn, rows=_rows_json(ordered))
    await conn.execute(_CLEAR_STAGED if copied else _CLEAR_UPSERT_SETTING)
