"""``fold.merge`` written in SQL: the statement that merges a batch's rows into the table.

Each part of the stored row (t) is taken from whichever side wins it, the batch's row
(EXCLUDED) or the stored one, by the same keys as core/fold.py. A change to the fold is a change
here too; tests/integration/test_store.py holds the two equal.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import fields
from decimal import Decimal

import asyncpg
import orjson
from sqlalchemy import text

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


_UPSERT_EXECUTIONS = prepare(
    text(f"""
-- Has the rollup trigger fold the updated rows into the pass over the inserted ones (migration
-- 0014): one rewrite of an agent's rollup rows a batch instead of two. Set for the transaction,
-- before the triggers fire; the trigger clears it once used, and upsert_executions after the
-- statement (a table without the triggers, as replay's shadow, leaves it set). In this
-- statement rather than one of its own: the batch's write must be on its way, without waiting
-- for this process, once it lets the next batch be decoded (pipeline.py).
WITH one_rollup_pass AS MATERIALIZED (SELECT set_config('agent_history.upsert', 'on', true))
INSERT INTO agent_executions AS t (
    id, agent_id, user_id, status, execution_start, execution_end, input_data, output_data,
    error_message, timeout_ms, last_seen_at, model, tags, metadata, parent_execution_id,
    trace_id, input_tokens, output_tokens, cost, cost_currency, input_rank, input_time,
    input_event_id, terminal_event_id)
SELECT u.* FROM one_rollup_pass, jsonb_to_recordset(
    CAST(convert_from(CAST(:rows AS bytea), 'UTF8') AS jsonb)) AS u(
    id uuid, agent_id uuid, user_id uuid, status text, execution_start timestamptz,
    execution_end timestamptz, input_data jsonb, output_data jsonb, error_message text,
    timeout_ms bigint, last_seen_at timestamptz, model text, tags text[], metadata jsonb,
    parent_execution_id uuid, trace_id text, input_tokens bigint, output_tokens bigint,
    cost numeric, cost_currency text, input_rank smallint, input_time timestamptz,
    input_event_id uuid, terminal_event_id uuid)
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
""")
)

# A later plain UPDATE in the transaction must not find the upsert's setting (migration 0014).
_CLEAR_UPSERT_SETTING = "SELECT set_config('agent_history.upsert', '', true)"


def _rows_json(rows: list[Execution]) -> bytes:
    """The rows as one JSON array of objects named like the columns (jsonb_to_recordset)."""
    try:
        return orjson.dumps(rows, default=_decimal)
    except TypeError:  # integers beyond 64 bits: valid JSON, and jsonb keeps them exactly
        rows_json = json.dumps([{f: getattr(r, f) for f in _FIELDS} for r in rows], default=str)
        return rows_json.encode()


def _decimal(value: object) -> str:
    """A cost, as the string of its digits: numeric reads it exactly."""
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError


_FIELDS = [f.name for f in fields(Execution)]


async def upsert_executions(conn: asyncpg.Connection, rows: Iterable[Execution]) -> None:
    """Merge each batch row into the stored row with the same id (insert when there is none)."""
    # In id order, one lock order for every projector (UUID.int orders as PostgreSQL does).
    ordered = sorted(rows, key=lambda r: r.id.int)
    if not ordered:
        return
    await _UPSERT_EXECUTIONS.execute(conn, rows=_rows_json(ordered))
    await conn.execute(_CLEAR_UPSERT_SETTING)
