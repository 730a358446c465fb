"""An execution in a list's JSON shape, written by PostgreSQL in the page's own statement.

The list route sends these bytes on as they come: no row is decoded into Python values and
encoded again (asyncpg's codecs and orjson were a quarter of the API's CPU per page). The text
is byte for byte what api.render writes from the same row with orjson (field order, no spaces,
UUIDs as text, times in UTC as ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z``, strings escaped as orjson
escapes them, the metadata and payloads as PostgreSQL's own JSON text, the cost as numeric's
text); tests/integration/test_history_api_json.py holds the two equal over every filter.
render.execution stays the one definition for the detail, trees, streams and exports.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, literal_column

_E = "agent_executions"


def _text(sql: str) -> str:
    """A nullable string as a JSON string (PostgreSQL escapes as orjson does), or null."""
    return f"coalesce(to_json({sql})::text, 'null')"


def _number(sql: str) -> str:
    return f"coalesce(({sql})::text, 'null')"


def _name(table: str, key: str) -> str:
    """The agent's or user's name: a lookup by primary key per row of the page, whatever plan
    PostgreSQL makes for the page (a join could be planned as a hash over every name)."""
    return f"(SELECT {table}.name FROM {table} WHERE {table}.id = {_E}.{key})"


def _uuid(sql: str) -> str:
    return f"coalesce('\"' || ({sql})::text || '\"', 'null')"


def _time(sql: str) -> str:
    """A timestamptz as orjson writes a UTC datetime: microseconds only when there are any."""
    utc = f"({sql} AT TIME ZONE 'UTC')"
    written = f"replace(to_char({utc}, 'YYYY-MM-DD\"T\"HH24:MI:SS.US'), '.000000', '')"
    return f"coalesce('\"' || {written} || 'Z\"', 'null')"


def _usage() -> str:
    """null when the run reported no usage; the cost's currency is USD when none (or an empty
    one) was stored, as render._usage has it."""
    cost, inputs, outputs = (f"{_E}.{c}" for c in ("cost", "input_tokens", "output_tokens"))
    currency = f"coalesce(nullif({_E}.cost_currency, ''), 'USD')"
    amount = (
        f"CASE WHEN {cost} IS NULL THEN 'null' ELSE '{{\"amount\":\"' || ({cost})::text || "
        f"'\",\"currency\":' || to_json({currency})::text || '}}' END"
    )
    return (
        f"CASE WHEN {cost} IS NULL AND {inputs} IS NULL AND {outputs} IS NULL THEN 'null' "
        f"ELSE '{{\"input_tokens\":' || {_number(inputs)} || ',\"output_tokens\":' || "
        f"{_number(outputs)} || ',\"cost\":' || {amount} || '}}' END"
    )


def execution_json(payloads: Sequence[str]) -> ColumnElement[Any]:
    """The JSON text of a row of agent_executions (or of a subquery so named, with its columns),
    with these payloads, in this order."""
    fields = [
        ("id", _uuid(f"{_E}.id")),
        ("agent_id", _uuid(f"{_E}.agent_id")),
        ("user_id", _uuid(f"{_E}.user_id")),
        ("status", _text(f"{_E}.status")),
        ("execution_start", _time(f"{_E}.execution_start")),
        ("execution_end", _time(f"{_E}.execution_end")),
        ("execution_time_ms", _number(f"{_E}.execution_time_ms")),
        ("last_seen_at", _time(f"{_E}.last_seen_at")),
        ("error_message", _text(f"{_E}.error_message")),
        ("created_at", _time(f"{_E}.created_at")),
        ("updated_at", _time(f"{_E}.updated_at")),
        (
            "agent",
            f"'{{\"id\":' || {_uuid(f'{_E}.agent_id')} || ',\"name\":' || "
            f"{_text(_name('agents', 'agent_id'))} || '}}'",
        ),
        (
            "user",
            f"'{{\"id\":' || {_uuid(f'{_E}.user_id')} || ',\"name\":' || "
            f"{_text(_name('users', 'user_id'))} || '}}'",
        ),
        ("model", _text(f"{_E}.model")),
        ("tags", f"coalesce(array_to_json({_E}.tags)::text, '[]')"),
        ("metadata", f"coalesce({_E}.metadata::text, '{{}}')"),
        ("parent_execution_id", _uuid(f"{_E}.parent_execution_id")),
        ("trace_id", _text(f"{_E}.trace_id")),
        ("usage", _usage()),
        *((name, f"coalesce({_E}.{name}::text, 'null')") for name in payloads),
    ]
    parts = " || ',' || ".join(f"'\"{name}\":' || {sql}" for name, sql in fields)
    return literal_column(f"'{{' || {parts} || '}}'")
