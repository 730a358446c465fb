"""The history API and its queries against the real PostgreSQL: lists, detail, readiness.

Each test writes rows for its own fresh agent and user ids, so tests never see each other's
data. Rows are inserted directly, as the projector would have left them.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from uuid import uuid4

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from agent_history.api import queries
from agent_history.api.filters import ExecutionFilter
from agent_history.api.queries import PageRequest, Payload
from agent_history.api.settings import ApiSettings
from tests.integration.history_api_support import (
    PREFIX,
    T0,
    add_execution,
    agent_list,
    api_client,
    assert_problem,
    bearer,
    get_ok,
    ids,
    new_agent,
    new_user,
)

pytestmark = pytest.mark.integration

SUMMARY_FIELDS = {
    "id",
    "agent_id",
    "user_id",
    "status",
    "execution_start",
    "execution_end",
    "execution_time_ms",
    "last_seen_at",
    "error_message",
    "created_at",
    "updated_at",
    "agent",
    "user",
    "model",
    "tags",
    "metadata",
    "parent_execution_id",
    "trace_id",
    "usage",
}
PUBLIC_FIELDS = SUMMARY_FIELDS | {"input_data", "output_data"}
BOTH: frozenset[Payload] = frozenset({"input_data", "output_data"})


@pytest.fixture
async def client(api_settings: ApiSettings) -> AsyncIterator[httpx.AsyncClient]:
    """A client whose token reads every user's executions."""
    async with api_client(api_settings, bearer(api_settings, uuid4(), all_scope=True)) as client:
        yield client


async def test_get_agent_execution_history_returns_records(db_engine: AsyncEngine) -> None:
    agent_id, user_id = await new_agent(db_engine, "Summariser", "Ada")
    done = await add_execution(
        db_engine,
        agent_id,
        user_id,
        status="completed",
        duration=timedelta(seconds=2, microseconds=250_999),
        input_data={"prompt": "hi"},
        output_data={"answer": 42},
    )
    running = await add_execution(db_engine, agent_id, user_id, start=T0 + timedelta(minutes=1))

    page = await queries.list_executions(
        db_engine, ExecutionFilter(agent_id=agent_id), PageRequest(include=BOTH)
    )

    assert (page.total, page.more) == (2, False)
    assert [row["id"] for row in page.rows] == [running, done]
    completed = page.rows[1]
    assert completed["status"] == "completed"
    assert completed["execution_time_ms"] == 2250
    # Payloads come as PostgreSQL's JSON text, passed through to responses unparsed.
    assert json.loads(completed["input_data"]) == {"prompt": "hi"}
    assert json.loads(completed["output_data"]) == {"answer": 42}
    assert (completed["agent_name"], completed["user_name"]) == ("Summariser", "Ada")
    assert page.rows[0]["execution_end"] is None
    assert page.rows[0]["execution_time_ms"] is None
    hidden = {"input_rank", "input_time", "input_event_id", "terminal_event_id"}
    assert not hidden & set(completed.keys())


async def test_list_query_selects_payloads_only_when_included(db_engine: AsyncEngine) -> None:
    agent_id, user_id = await new_agent(db_engine)
    await add_execution(db_engine, agent_id, user_id, input_data={"prompt": "large"})
    where = ExecutionFilter(agent_id=agent_id)

    bare = await queries.list_executions(db_engine, where, PageRequest())
    inputs = await queries.list_executions(
        db_engine, where, PageRequest(include=frozenset({"input_data"}))
    )

    assert not {"input_data", "output_data"} & set(bare.rows[0].keys())
    assert json.loads(inputs.rows[0]["input_data"]) == {"prompt": "large"}
    assert "output_data" not in inputs.rows[0]


async def test_get_agent_execution_history_empty_for_new_agent(db_engine: AsyncEngine) -> None:
    page = await queries.list_executions(
        db_engine, ExecutionFilter(agent_id=uuid4()), PageRequest()
    )
    assert (list(page.rows), page.total, page.more) == ([], 0, False)


async def test_list_is_newest_first_with_id_as_tie_break(
    db_engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    agent_id, user_id = await new_agent(db_engine)
    starts = [T0, T0, T0 - timedelta(milliseconds=1), T0 + timedelta(milliseconds=1), T0]
    made = [
        (start, await add_execution(db_engine, agent_id, user_id, start=start)) for start in starts
    ]

    body = await get_ok(client, agent_list(agent_id))

    expected = [execution_id for _, execution_id in sorted(made, reverse=True)]
    assert ids(body) == expected


async def test_list_names_the_agent_and_the_user(
    db_engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    agent_id, user_id = await new_agent(db_engine, "Report summariser", "Ada Lovelace")
    unnamed_user = await new_user(db_engine, None)
    await add_execution(db_engine, agent_id, user_id, start=T0 + timedelta(seconds=1))
    await add_execution(db_engine, agent_id, unnamed_user, start=T0)

    named, anonymous = (await get_ok(client, agent_list(agent_id)))["executions"]

    assert named["agent"] == {"id": str(agent_id), "name": "Report summariser"}
    assert named["user"] == {"id": str(user_id), "name": "Ada Lovelace"}
    assert anonymous["agent"] == named["agent"]
    assert anonymous["user"] == {"id": str(unnamed_user), "name": None}


async def test_detail_returns_the_execution_with_its_payloads(
    db_engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    agent_id, user_id = await new_agent(db_engine, "Summariser", "Ada")
    execution_id = await add_execution(
        db_engine,
        agent_id,
        user_id,
        status="failed",
        duration=timedelta(milliseconds=1500),
        input_data={"prompt": "hi"},
        output_data=["partial"],
        error_message="model timed out",
    )

    body = await get_ok(client, f"{PREFIX}/executions/{execution_id}")

    assert set(body) == PUBLIC_FIELDS
    assert body["id"] == str(execution_id)
    assert body["status"] == "failed"
    assert datetime.fromisoformat(body["execution_start"]) == T0
    assert datetime.fromisoformat(body["execution_end"]) == T0 + timedelta(milliseconds=1500)
    assert body["execution_time_ms"] == 1500
    assert datetime.fromisoformat(body["last_seen_at"]) == T0 + timedelta(milliseconds=1500)
    assert (body["input_data"], body["output_data"]) == ({"prompt": "hi"}, ["partial"])
    assert body["error_message"] == "model timed out"
    assert body["agent"] == {"id": str(agent_id), "name": "Summariser"}
    assert body["user"] == {"id": str(user_id), "name": "Ada"}
    listed = await get_ok(client, agent_list(agent_id), include="input_data,output_data")
    assert listed["executions"] == [body]
    summary = (await get_ok(client, agent_list(agent_id)))["executions"]
    assert summary == [{key: body[key] for key in SUMMARY_FIELDS}]


async def test_detail_of_an_unknown_execution_is_a_404_problem(
    client: httpx.AsyncClient,
) -> None:
    unknown = uuid4()
    response = await client.get(f"{PREFIX}/executions/{unknown}")
    body = assert_problem(response, 404)
    assert body["detail"] == f"execution {unknown} not found"
    assert body["instance"] == f"{PREFIX}/executions/{unknown}"


async def test_readyz_is_ok_with_the_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz", headers={"Authorization": ""})
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ok"}


async def test_a_pooled_connection_that_died_is_replaced_without_an_error(
    db_engine: AsyncEngine, api_settings: ApiSettings
) -> None:
    """The API pings nobody before a query: when the server drops its pooled connections (a
    restart, a failover), the next requests run again on fresh ones instead of failing."""
    agent_id, user_id = await new_agent(db_engine)
    execution_id = await add_execution(db_engine, agent_id, user_id)
    settings = api_settings.model_copy(update={"database_pool_size": 2})

    async def end_the_api_sessions() -> None:
        async with db_engine.connect() as conn:
            ended = await conn.exec_driver_sql(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND application_name = 'agent-history-api'"
            )
            assert ended.scalar_one() >= 1

    async with api_client(settings, bearer(settings, user_id, all_scope=True)) as client:
        for _ in range(2):
            assert len(ids(await get_ok(client, agent_list(agent_id)))) == 1
        await end_the_api_sessions()
        # The list (its prepared statement straight through asyncpg) ...
        for _ in range(4):
            assert len(ids(await get_ok(client, agent_list(agent_id)))) == 1
        await end_the_api_sessions()
        # ... and the detail (a statement through SQLAlchemy) both run again on fresh ones.
        for _ in range(4):
            body = await get_ok(client, f"{PREFIX}/executions/{execution_id}")
            assert body["id"] == str(execution_id)
