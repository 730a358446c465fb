"""The bodies api.render writes are the ones the response models would: same JSON, same keys."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from asyncpg.pgproto.pgproto import UUID as PgUUID
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from agent_history.api import render
from agent_history.api.queries import DETAILS, FIELDS
from agent_history.api.schemas import (
    Execution,
    ExecutionPage,
    ExecutionSummary,
    ExecutionTree,
    TreeNode,
)
from agent_history.contract.statuses import STATUSES

_times = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
)
# PostgreSQL writes JSON text with these separators.
_PG = (", ", ": ")
_metadata = st.dictionaries(
    st.text(min_size=1),
    st.text() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False),
    max_size=3,
)
_json: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=8,
)


@st.composite
def _rows(draw: st.DrawFn, payloads: tuple[str, ...]) -> dict[str, Any]:
    """A row as api.queries returns it, payloads as PostgreSQL's JSON text (its spacing)."""
    row: dict[str, Any] = {
        "id": draw(st.uuids()),
        "agent_id": draw(st.uuids()),
        "user_id": draw(st.uuids()),
        "status": draw(st.sampled_from(STATUSES)),
        "execution_start": draw(_times),
        "execution_end": draw(st.none() | _times),
        "execution_time_ms": draw(st.none() | st.integers(0, 2**62)),
        "last_seen_at": draw(st.none() | _times),
        "error_message": draw(st.none() | st.text()),
        "created_at": draw(_times),
        "updated_at": draw(_times),
        "agent_name": draw(st.none() | st.text()),
        "user_name": draw(st.none() | st.text()),
        "model": draw(st.none() | st.text(min_size=1)),
        "tags": draw(st.none() | st.lists(st.text(min_size=1), max_size=3)),
        "metadata": draw(st.none() | _metadata.map(lambda m: json.dumps(m, separators=_PG))),
        "parent_execution_id": draw(st.none() | st.uuids()),
        "trace_id": draw(st.none() | st.from_regex(r"[0-9a-f]{32}", fullmatch=True)),
        "input_tokens": draw(st.none() | st.integers(0, 10**15)),
        "output_tokens": draw(st.none() | st.integers(0, 10**15)),
        "cost": None,
        "cost_currency": None,
    }
    cost = draw(st.none() | st.decimals(0, 10**18, places=12, allow_nan=False))
    if cost is not None:
        row["cost"], row["cost_currency"] = f"{cost:f}", draw(st.sampled_from(["USD", "EUR"]))
    for name in payloads:
        value = draw(
            st.none() | (st.dictionaries(st.text(), _json) if name == "input_data" else _json)
        )
        row[name] = None if value is None else json.dumps(value, separators=_PG)
    return row


def _modelled(row: dict[str, Any]) -> dict[str, Any]:
    """What the response models were built from: the payloads parsed, the names nested."""
    usage = {"input_tokens", "output_tokens", "cost", "cost_currency"}
    fields = {k: v for k, v in row.items() if k not in {"agent_name", "user_name", *usage}}
    for name in ("input_data", "output_data"):
        if row.get(name) is not None:
            fields[name] = json.loads(row[name])
    fields["agent"] = {"id": row["agent_id"], "name": row["agent_name"]}
    fields["user"] = {"id": row["user_id"], "name": row["user_name"]}
    fields["tags"] = row["tags"] or []
    fields["metadata"] = json.loads(row["metadata"] or "{}")
    fields["usage"] = None
    if any(row[name] is not None for name in usage):
        cost = row["cost"] and {"amount": row["cost"], "currency": row["cost_currency"]}
        fields["usage"] = {
            "input_tokens": row["input_tokens"],
            "output_tokens": row["output_tokens"],
            "cost": cost,
        }
    return fields


# A row of a run that carries nothing: no model, tags, metadata, parent or usage.
_NOTHING_CARRIED: dict[str, Any] = dict.fromkeys(DETAILS)


def _same(body: bytes, model: BaseModel) -> None:
    expected = model.model_dump_json(exclude_unset=True)
    assert json.loads(body) == json.loads(expected)
    # Same keys in the same order, not just equal objects.
    assert list(json.loads(body)) == list(json.loads(expected))


_INCLUDES = st.sampled_from([(), ("input_data",), ("output_data",), ("input_data", "output_data")])


@given(
    _INCLUDES.flatmap(
        lambda include: st.tuples(st.just(include), st.lists(_rows(include), max_size=4))
    ),
    st.none() | st.integers(0, 10**12),
    st.none() | st.text(min_size=1),
)
def test_a_page_is_the_models_page(
    page: tuple[tuple[str, ...], list[dict[str, Any]]],
    total: int | None,
    cursor: str | None,
) -> None:
    include, rows = page
    executions = [render.item(row, include).decode() for row in rows]
    body = bytes(render.page(executions, total=total, limit=50, offset=3, next_cursor=cursor).body)
    model = ExecutionPage(
        executions=[ExecutionSummary.model_validate(_modelled(row)) for row in rows],
        total=total,
        limit=50,
        offset=3,
        next_cursor=cursor,
    )
    _same(body, model)
    # A list has the payloads it was asked for, and leaves out the others.
    for execution in json.loads(body)["executions"]:
        assert {"input_data", "output_data"} & set(execution) == set(include)


@given(_rows(("input_data", "output_data")))
def test_one_execution_is_the_models_execution(row: dict[str, Any]) -> None:
    body = bytes(render.dumps(render.execution(row)).body)
    _same(body, Execution.model_validate(_modelled(row)))


def test_times_are_utc_with_a_z_and_payloads_pass_through_unparsed() -> None:
    start = datetime(2025, 1, 15, 10, 30, tzinfo=UTC)
    row = {
        "id": UUID(int=1),
        "agent_id": UUID(int=2),
        "user_id": UUID(int=3),
        "status": "completed",
        "execution_start": start,
        "execution_end": start.replace(microsecond=250_000),
        "execution_time_ms": 250,
        "last_seen_at": start,
        "error_message": None,
        "created_at": start,
        "updated_at": start,
        "agent_name": "a",
        "user_name": None,
        **_NOTHING_CARRIED,
        # Beyond 64 bits: exactly as PostgreSQL wrote it, never through a float or an int64.
        "input_data": '{"n": 123456789012345678901234567890}',
        "output_data": None,
    }
    body = json.loads(bytes(render.dumps(render.execution(row)).body))
    assert body["execution_start"] == "2025-01-15T10:30:00Z"
    assert body["execution_end"] == "2025-01-15T10:30:00.250000Z"
    assert body["input_data"] == {"n": 123456789012345678901234567890}
    assert body["output_data"] is None
    assert body["user"] == {"id": str(UUID(int=3)), "name": None}


def test_a_json_null_payload_and_asyncpgs_uuids_are_written_as_the_models_write_them() -> None:
    """A payload that is JSON null (not SQL NULL) stays null; asyncpg returns its own UUID
    subclass, which orjson does not know."""
    start = datetime(2025, 1, 15, 10, 30, tzinfo=UTC)
    ids = [PgUUID(str(UUID(int=n))) for n in (1, 2, 3)]
    row = {
        "id": ids[0],
        "agent_id": ids[1],
        "user_id": ids[2],
        "status": "completed",
        "execution_start": start,
        "execution_end": start,
        "execution_time_ms": 0,
        "last_seen_at": None,
        "error_message": None,
        "created_at": start,
        "updated_at": start,
        "agent_name": "a",
        "user_name": "u",
        **_NOTHING_CARRIED,
        "input_data": None,
        "output_data": "null",
    }
    body = bytes(render.dumps(render.execution(row)).body)
    _same(body, Execution.model_validate(_modelled(row)))
    assert json.loads(body)["output_data"] is None
    assert json.loads(body)["id"] == str(UUID(int=1))


@given(st.lists(_rows(()), max_size=4), st.sampled_from([None, "depth", "limit"]))
def test_a_tree_is_the_models_tree(rows: list[dict[str, Any]], truncated: str | None) -> None:
    nodes = [{**row, "depth": n} for n, row in enumerate(rows)]
    body = bytes(render.tree(nodes, depth=5, limit=500, truncated=truncated).body)
    model = ExecutionTree.model_validate(
        {
            "executions": [TreeNode.model_validate(_modelled(node)) for node in nodes],
            "depth": 5,
            "limit": 500,
            "truncated": truncated,
        }
    )
    _same(body, model)


def test_what_a_run_carries_is_written_exactly_and_nothing_is_empty_not_null() -> None:
    start = datetime(2025, 1, 15, 10, 30, tzinfo=UTC)
    row: dict[str, Any] = {
        **dict.fromkeys(FIELDS),
        "id": UUID(int=1),
        "agent_id": UUID(int=2),
        "user_id": UUID(int=3),
        "execution_start": start,
        "agent_name": None,
        "user_name": None,
        **_NOTHING_CARRIED,
    }
    bare = json.loads(bytes(render.dumps(render.execution(row, ())).body))
    assert (bare["tags"], bare["metadata"], bare["usage"]) == ([], {}, None)
    assert (bare["model"], bare["parent_execution_id"]) == (None, None)

    row.update(
        model="gpt-4o-mini",
        tags=["a", "b"],
        metadata='{"big": 123456789012345678901234567890, "ok": true, "team": "x"}',
        parent_execution_id=UUID(int=9),
        trace_id="4bf92f3577b34da6a3ce929d0e0e4736",
        output_tokens=7,
        cost="0.000000100000",
        cost_currency="EUR",
    )
    body = json.loads(bytes(render.dumps(render.execution(row, ())).body))
    assert body["metadata"] == {"big": 123456789012345678901234567890, "ok": True, "team": "x"}
    # The amount is numeric's own text: a string, exact, never in exponent form.
    assert body["usage"] == {
        "input_tokens": None,
        "output_tokens": 7,
        "cost": {"amount": "0.000000100000", "currency": "EUR"},
    }
    assert (body["tags"], body["parent_execution_id"]) == (["a", "b"], str(UUID(int=9)))
    assert body["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
