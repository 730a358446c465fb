"""The history API and its queries against the real PostgreSQL.

Each test writes rows for its own fresh agent and user ids, so tests never see each other's
data. Rows are inserted directly, as the projector would have left them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from agent_history.settings import ApiSettings
from agent_history.tables import agent_executions, agents, users
from api import queries
from api.app import create_app

pytestmark = pytest.mark.integration

PREFIX = "/api/v1/agent-studio"
T0 = datetime(2025, 1, 15, 10, 30, tzinfo=UTC)
PUBLIC_FIELDS = {
    "id",
    "agent_id",
    "user_id",
    "status",
    "execution_start",
    "execution_end",
    "execution_time_ms",
    "input_data",
    "output_data",
    "error_message",
    "created_at",
    "updated_at",
    "agent",
    "user",
}


@pytest.fixture
async def client(api_settings: ApiSettings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(api_settings)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://api") as client,
    ):
        yield client


async def _new_agent(
    engine: AsyncEngine, agent_name: str | None = "Summariser", user_name: str | None = "Ada"
) -> tuple[UUID, UUID]:
    """A fresh agent and user, named as given."""
    agent_id, user_id = uuid4(), uuid4()
    async with engine.begin() as conn:
        await conn.execute(insert(agents).values(id=agent_id, name=agent_name))
        await conn.execute(insert(users).values(id=user_id, name=user_name))
    return agent_id, user_id


async def _add_execution(
    engine: AsyncEngine,
    agent_id: UUID,
    user_id: UUID,
    *,
    start: datetime = T0,
    status: str = "running",
    duration: timedelta | None = None,
    execution_id: UUID | None = None,
    **columns: Any,
) -> UUID:
    """One execution; with a duration it has ended, and execution_time_ms is computed."""
    execution_id = execution_id or uuid4()
    ended = duration is not None
    async with engine.begin() as conn:
        await conn.execute(
            insert(agent_executions).values(
                id=execution_id,
                agent_id=agent_id,
                user_id=user_id,
                status=status,
                execution_start=start,
                execution_end=None if duration is None else start + duration,
                # input_rank 0: a Started event was folded, so execution_time_ms is known.
                input_rank=0,
                input_time=start,
                input_event_id=uuid4(),
                terminal_event_id=uuid4() if ended else None,
                **columns,
            )
        )
    return execution_id


async def _list(client: httpx.AsyncClient, agent_id: UUID, **params: Any) -> dict[str, Any]:
    response = await client.get(f"{PREFIX}/agents/{agent_id}/executions", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _ids(body: dict[str, Any]) -> list[UUID]:
    return [UUID(execution["id"]) for execution in body["executions"]]


async def test_get_agent_execution_history_returns_records(db_engine: AsyncEngine) -> None:
    agent_id, user_id = await _new_agent(db_engine, "Summariser", "Ada")
    done = await _add_execution(
        db_engine,
        agent_id,
        user_id,
        status="completed",
        duration=timedelta(seconds=2, microseconds=250_999),
        input_data={"prompt": "hi"},
        output_data={"answer": 42},
    )
    running = await _add_execution(db_engine, agent_id, user_id, start=T0 + timedelta(minutes=1))

    rows, total = await queries.list_executions(db_engine, agent_id, set(), 50, 0)

    assert total == 2
    assert [row["id"] for row in rows] == [running, done]
    completed = rows[1]
    assert completed["status"] == "completed"
    assert completed["execution_time_ms"] == 2250
    assert completed["input_data"] == {"prompt": "hi"}
    assert completed["output_data"] == {"answer": 42}
    assert (completed["agent_name"], completed["user_name"]) == ("Summariser", "Ada")
    assert rows[0]["execution_end"] is None
    assert rows[0]["execution_time_ms"] is None
    hidden = {"input_rank", "input_time", "input_event_id", "terminal_event_id"}
    assert not hidden & set(completed.keys())


async def test_get_agent_execution_history_pagination(db_engine: AsyncEngine) -> None:
    agent_id, user_id = await _new_agent(db_engine)
    newest_first = [
        await _add_execution(db_engine, agent_id, user_id, start=T0 - timedelta(seconds=i))
        for i in range(5)
    ]

    pages = []
    for offset in (0, 2, 4, 6):
        rows, total = await queries.list_executions(db_engine, agent_id, set(), 2, offset)
        assert total == 5, f"offset {offset}: expected total 5, got {total}"
        pages.append([row["id"] for row in rows])

    assert pages == [newest_first[0:2], newest_first[2:4], newest_first[4:5], []]


async def test_get_agent_execution_history_empty_for_new_agent(db_engine: AsyncEngine) -> None:
    rows, total = await queries.list_executions(db_engine, uuid4(), set(), 50, 0)
    assert (list(rows), total) == ([], 0)


async def test_list_is_newest_first_with_id_as_tie_break(
    db_engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    agent_id, user_id = await _new_agent(db_engine)
    starts = [T0, T0, T0 - timedelta(milliseconds=1), T0 + timedelta(milliseconds=1), T0]
    made = [
        (start, await _add_execution(db_engine, agent_id, user_id, start=start)) for start in starts
    ]

    body = await _list(client, agent_id)

    expected = [execution_id for _, execution_id in sorted(made, reverse=True)]
    assert _ids(body) == expected


async def test_list_total_counts_every_match_not_the_page(
    db_engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    agent_id, user_id = await _new_agent(db_engine)
    for i in range(7):
        await _add_execution(db_engine, agent_id, user_id, start=T0 + timedelta(seconds=i))

    first = await _list(client, agent_id, limit=3)
    last = await _list(client, agent_id, limit=3, offset=6)
    beyond = await _list(client, agent_id, limit=3, offset=50)

    assert (len(first["executions"]), first["total"], first["limit"], first["offset"]) == (
        3,
        7,
        3,
        0,
    )
    assert (len(last["executions"]), last["total"], last["offset"]) == (1, 7, 6)
    assert (beyond["executions"], beyond["total"]) == ([], 7)


async def test_list_filters_by_repeatable_status_and_its_synonym(
    db_engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    agent_id, user_id = await _new_agent(db_engine)
    by_status = {}
    for i, status in enumerate(("pending", "running", "completed", "failed", "cancelled")):
        ended = timedelta(seconds=1) if status in {"completed", "failed", "cancelled"} else None
        by_status[status] = await _add_execution(
            db_engine,
            agent_id,
            user_id,
            start=T0 + timedelta(seconds=i),
            status=status,
            duration=ended,
        )

    async def listed(**params: Any) -> set[str]:
        body = await _list(client, agent_id, **params)
        assert body["total"] == len(body["executions"]), body
        return {execution["status"] for execution in body["executions"]}

    assert await listed() == set(by_status)
    assert await listed(status="completed") == {"completed"}
    assert await listed(status=["completed", "failed"]) == {"completed", "failed"}
    assert await listed(status_filter="running") == {"running"}
    assert await listed(status_filter=["pending", "running"]) == {"pending", "running"}
    assert await listed(status="completed", status_filter=["failed", "cancelled"]) == {
        "completed",
        "failed",
        "cancelled",
    }
    assert await listed(status=["failed", "failed"], status_filter="failed") == {"failed"}


async def test_list_names_the_agent_and_the_user(
    db_engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    agent_id, user_id = await _new_agent(db_engine, "Report summariser", "Ada Lovelace")
    _, unnamed_user = await _new_agent(db_engine, None, None)
    await _add_execution(db_engine, agent_id, user_id, start=T0 + timedelta(seconds=1))
    await _add_execution(db_engine, agent_id, unnamed_user, start=T0)

    named, anonymous = (await _list(client, agent_id))["executions"]

    assert named["agent"] == {"id": str(agent_id), "name": "Report summariser"}
    assert named["user"] == {"id": str(user_id), "name": "Ada Lovelace"}
    assert anonymous["agent"] == named["agent"]
    assert anonymous["user"] == {"id": str(unnamed_user), "name": None}


async def test_detail_returns_the_execution(
    db_engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    agent_id, user_id = await _new_agent(db_engine, "Summariser", "Ada")
    execution_id = await _add_execution(
        db_engine,
        agent_id,
        user_id,
        status="failed",
        duration=timedelta(milliseconds=1500),
        input_data={"prompt": "hi"},
        output_data=["partial"],
        error_message="model timed out",
    )

    response = await client.get(f"{PREFIX}/executions/{execution_id}")

    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == PUBLIC_FIELDS
    assert body["id"] == str(execution_id)
    assert body["status"] == "failed"
    assert datetime.fromisoformat(body["execution_start"]) == T0
    assert datetime.fromisoformat(body["execution_end"]) == T0 + timedelta(milliseconds=1500)
    assert body["execution_time_ms"] == 1500
    assert (body["input_data"], body["output_data"]) == ({"prompt": "hi"}, ["partial"])
    assert body["error_message"] == "model timed out"
    assert body["agent"] == {"id": str(agent_id), "name": "Summariser"}
    assert body["user"] == {"id": str(user_id), "name": "Ada"}
    assert (await _list(client, agent_id))["executions"] == [body]


async def test_detail_of_an_unknown_execution_is_404_naming_it(client: httpx.AsyncClient) -> None:
    unknown = uuid4()
    response = await client.get(f"{PREFIX}/executions/{unknown}")
    assert response.status_code == 404
    assert response.json() == {"detail": f"execution {unknown} not found"}


async def test_readyz_is_ok_with_the_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "ok"
