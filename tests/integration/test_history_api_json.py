"""The lists' pages as PostgreSQL writes them (api.json_rows) are byte for byte the pages the
rows rendered in Python (api.render, as the detail, streams and exports still write them) give:
over every filter, order, include, offset, cursor and total, for every caller, and over odd
values of every column."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import JSON
from sqlalchemy.ext.asyncio import AsyncEngine

from agent_history.api import queries, render
from agent_history.api.cursor import CursorCodec, Position, cursor_key
from agent_history.api.paging import list_filter, query_fingerprint
from agent_history.api.parameters import AgentListQuery, UserListQuery
from agent_history.api.settings import ApiSettings
from agent_history.read_model.db import DatabaseSettings, make_engine
from tests.integration.history_api_support import (
    T0,
    add_execution,
    agent_list,
    api_client,
    bearer,
    new_agent,
    new_user,
    user_list,
)

pytestmark = pytest.mark.integration

ODD = 'q"uote \\ back\nline\ttab\x01\x1f\x7f é 😀 \u2028 </script>'


@dataclass(frozen=True)
class History:
    agent_id: UUID
    user_id: UUID  # most runs'
    other_id: UUID  # a few runs', another user with no name
    root_id: UUID  # a run that started others


async def _history(engine: AsyncEngine) -> History:
    """An agent whose runs have every kind of value a column can hold."""
    agent_id, user_id = await new_agent(engine, agent_name=ODD, user_name='Ada "A" Lovelace')
    other_id = await new_user(engine, name=None)
    root_id = uuid4()
    runs: list[dict[str, Any]] = [
        dict(execution_id=root_id, status="completed", duration=timedelta(seconds=3)),
        dict(status="failed", duration=timedelta(microseconds=1), error_message=ODD),
        dict(status="running", tags=["a"], model="gpt-4o", metadata={"team": "finance"}),
        dict(
            status="completed",
            duration=timedelta(milliseconds=5),
            tags=["a", ODD],
            metadata={"team": "finance", "priority": 2, "ratio": 1.5, "flag": True, ODD: ODD},
            input_tokens=12,
            output_tokens=0,
            cost=Decimal("0.004200"),
            cost_currency="EUR",
        ),
        dict(
            status="completed",
            duration=timedelta(days=400),
            tags=[],
            metadata={},
            input_tokens=7,
            input_data={"prompt": ODD, "n": [1, 2.5, None]},
            output_data=JSON.NULL,
        ),
        dict(
            status="cancelled",
            duration=timedelta(0),
            cost=Decimal("12345678901234.5"),
            output_data=[ODD, {"k": False}],
            trace_id="0af7651916cd43dd8448eb211c80319c",
        ),
        dict(status="pending", model=ODD, metadata={"priority": "2"}, user_id=other_id),
        dict(
            status="timed_out",
            duration=timedelta(minutes=1),
            parent_execution_id=root_id,
            input_data={},
            output_data="text",
            user_id=other_id,
        ),
        dict(
            status="completed",
            duration=timedelta(seconds=1),
            parent_execution_id=root_id,
            tags=["b"],
            output_tokens=99,
        ),
    ]
    for i, run in enumerate(runs):
        # Two runs share a start (the id decides), one starts on a whole second, one long ago.
        start = T0 + timedelta(seconds=i // 2 * 7, microseconds=0 if i == 3 else 120_000 + i)
        if i == len(runs) - 1:
            start = datetime(999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)
        await add_execution(engine, agent_id, run.pop("user_id", user_id), start=start, **run)
    return History(agent_id, user_id, other_id, root_id)


# Query parameters as a client sends them: each combination is walked page by page.
def _combinations(h: History) -> list[dict[str, Any]]:
    middle = (T0 + timedelta(seconds=7)).isoformat()
    late = (T0 + timedelta(seconds=22)).isoformat()
    return [
        {},
        {"limit": 2},
        {"limit": 3, "order": "asc"},
        {"limit": 2, "status": ["completed"]},
        {"status": ["failed", "cancelled"], "status_filter": ["pending"]},
        {"limit": 2, "user_id": str(h.other_id)},
        {"limit": 2, "started_after": middle, "started_before": late},
        {"started_after": middle, "order": "asc", "include": "input_data"},
        {"tag": ["a"]},
        {"tag": ["a", ODD], "include": "output_data"},
        {"metadata.team": "finance", "limit": 1},
        {"metadata.priority": "2"},
        {"metadata.team": "finance", "metadata.ratio": "1.50"},
        {"model": "gpt-4o"},
        {"model": ODD},
        {"parent_execution_id": str(h.root_id), "limit": 1},
        {"root": "true", "limit": 3},
        {"root": "false", "include": "input_data,output_data"},
        {"limit": 3, "include": "input_data,output_data"},
        {"limit": 2, "offset": 3},
        {"limit": 2, "offset": 3, "status": ["completed"], "order": "asc"},
        {"offset": 50},
        {"offset": 50, "tag": ["a"]},
        {"status": ["completed"], "tag": ["b"], "root": "false"},
        {"status": ["completed"], "user_id": str(h.user_id), "limit": 2, "include": "input_data"},
    ]


async def _rendered(
    engine: AsyncEngine,
    cursors: CursorCodec,
    url: str,
    h: History,
    owner: UUID | None,
    params: dict[str, Any],
) -> bytes:
    """The page the rows give, rendered in Python: what the list route answered until its
    pages were written by PostgreSQL."""
    if url == agent_list(h.agent_id):
        agents = AgentListQuery.model_validate(params)
        where = list_filter(agents, agent_id=h.agent_id, user_id=agents.user_id, owner_id=owner)
        query: AgentListQuery | UserListQuery = agents
    else:
        query = UserListQuery.model_validate(params)
        where = list_filter(query, agent_id=query.agent_id, user_id=h.user_id, owner_id=owner)
    fingerprint = query_fingerprint(where, query.order)
    after = None if query.cursor is None else cursors.decode(query.cursor, fingerprint)
    request = queries.PageRequest(
        limit=query.limit,
        offset=query.offset,
        order=query.order,
        after=after,
        include=query.included,
    )
    page = await queries.list_executions(engine, where, request)
    next_cursor = None
    if page.more:
        last = page.rows[-1]
        next_cursor = cursors.encode(Position(last["execution_start"], last["id"]), fingerprint)
    payloads = [name for name in queries.PAYLOADS if name in query.included]
    bodies = [render.item(row, payloads).decode() for row in page.rows]
    written = render.page(
        bodies, total=page.total, limit=query.limit, offset=query.offset, next_cursor=next_cursor
    )
    return bytes(written.body)


@pytest.fixture
async def history(db_engine: AsyncEngine) -> History:
    return await _history(db_engine)


@pytest.mark.parametrize("caller", ["all", "owner"])
async def test_every_filter_pages_the_same_bytes(
    db_engine: AsyncEngine, api_settings: ApiSettings, history: History, caller: str
) -> None:
    owner = None if caller == "all" else history.user_id
    headers = bearer(api_settings, history.user_id, all_scope=caller == "all")
    cursors = CursorCodec(cursor_key(api_settings))
    lists = [agent_list(history.agent_id), user_list(history.user_id)]
    pages = 0
    async with api_client(api_settings, headers) as client:
        for url in lists:
            for combination in _combinations(history):
                params = dict(combination)
                if url != lists[0]:
                    params["agent_id"] = params.pop("user_id", str(history.agent_id))
                while True:
                    response = await client.get(url, params=params)
                    assert response.status_code == 200, f"{url} {params}: {response.text}"
                    expected = await _rendered(db_engine, cursors, url, history, owner, params)
                    assert response.content == expected, f"{url} {params}"
                    pages += 1
                    cursor = response.json()["next_cursor"]
                    if cursor is None:
                        break
                    params = {**params, "cursor": cursor, "offset": 0}
    # The walks went past first pages, and every combination answered.
    assert pages > 2 * len(_combinations(history))


_text = st.text(st.characters(exclude_characters="\x00", exclude_categories=["Cs"]))
_json: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63) | _text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=6,
)
_runs = st.fixed_dictionaries(
    {
        "start": st.datetimes(
            min_value=datetime(1, 1, 2), max_value=datetime(9000, 1, 1), timezones=st.just(UTC)
        ),
        "status": st.sampled_from(["running", "completed", "failed"]),
        "duration": st.none() | st.timedeltas(timedelta(0), timedelta(days=300_000)),
        "error_message": st.none() | _text,
        "model": st.none() | _text.filter(bool),
        "tags": st.none() | st.lists(_text, max_size=3),
        "metadata": st.none()
        | st.dictionaries(_text, _text | st.booleans() | st.integers(-(2**53), 2**53), max_size=3),
        "trace_id": st.none() | _text,
        "input_tokens": st.none() | st.integers(0, 2**62),
        "output_tokens": st.none() | st.integers(0, 2**62),
        "cost": st.none() | st.decimals(min_value=0, max_value=10**12, places=8),
        "cost_currency": st.none() | st.sampled_from(["USD", "EUR", ""]),
        "input_data": st.none() | st.dictionaries(_text, _json, max_size=3),
        "output_data": _json,
    }
)


@settings(max_examples=60, deadline=None)
@given(run=_runs, agent_name=st.none() | _text, user_name=st.none() | _text)
def test_any_row_is_written_as_python_writes_it(
    database_url: str, run: dict[str, Any], agent_name: str | None, user_name: str | None
) -> None:
    asyncio.run(_written_as_python_writes_it(database_url, run, agent_name, user_name))


async def _written_as_python_writes_it(
    database_url: str, run: dict[str, Any], agent_name: str | None, user_name: str | None
) -> None:
    engine = make_engine(DatabaseSettings(database_url=database_url))
    try:
        agent_id, user_id = await new_agent(engine, agent_name, user_name)
        if run["output_data"] is None:  # JSON's null, not SQL's NULL
            run["output_data"] = JSON.NULL
        await add_execution(engine, agent_id, user_id, **run)
        request = queries.PageRequest(include=frozenset(queries.PAYLOADS))
        where = list_filter(AgentListQuery(), agent_id=agent_id)
        rows = (await queries.list_executions(engine, where, request)).rows
        written = (await queries.list_executions(engine, where, request, written=True)).rows
        assert [row["body"] for row in written] == [
            render.item(row, queries.PAYLOADS).decode() for row in rows
        ]
    finally:
        await engine.dispose()
