"""Rows and clients for the history API's integration tests.

Rows are inserted directly, as the projector would have left them; each test makes its own
agents and users, so tests never see each other's data.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import httpx
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from agent_history.api.app import create_app
from agent_history.api.auth import mint_token
from agent_history.api.settings import ApiSettings
from agent_history.contract.statuses import TERMINAL_STATUSES
from agent_history.read_model.tables import agent_executions, agents, users

PREFIX = "/api/v1/agent-studio"
T0 = datetime(2025, 1, 15, 10, 30, tzinfo=UTC)
TERMINAL = tuple(sorted(TERMINAL_STATUSES))


def bearer(settings: ApiSettings, user_id: UUID, *, all_scope: bool = False) -> dict[str, str]:
    """The Authorization header of a fresh token for ``user_id``."""
    return {"Authorization": f"Bearer {mint_token(settings, user_id, all_scope=all_scope)}"}


@asynccontextmanager
async def api_client(
    settings: ApiSettings, headers: dict[str, str] | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a started app, sending ``headers`` with every request."""
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://api", headers=headers) as client,
    ):
        yield client


async def new_user(engine: AsyncEngine, name: str | None = "Ada") -> UUID:
    user_id = uuid4()
    async with engine.begin() as conn:
        await conn.execute(insert(users).values(id=user_id, name=name))
    return user_id


async def new_agent(
    engine: AsyncEngine, agent_name: str | None = "Summariser", user_name: str | None = "Ada"
) -> tuple[UUID, UUID]:
    """A fresh agent and user, named as given."""
    agent_id = uuid4()
    async with engine.begin() as conn:
        await conn.execute(insert(agents).values(id=agent_id, name=agent_name))
    return agent_id, await new_user(engine, user_name)


async def add_execution(
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
    end = None if duration is None else start + duration
    # The newest event of a run so made: its end, else its start.
    columns.setdefault("last_seen_at", end or start)
    async with engine.begin() as conn:
        await conn.execute(
            insert(agent_executions).values(
                id=execution_id,
                agent_id=agent_id,
                user_id=user_id,
                status=status,
                execution_start=start,
                execution_end=end,
                # input_rank 0: a Started event was folded, so execution_time_ms is known.
                input_rank=0,
                input_time=start,
                input_event_id=uuid4(),
                terminal_event_id=uuid4() if ended else None,
                **columns,
            )
        )
    return execution_id


async def history_of(engine: AsyncEngine, count: int) -> tuple[UUID, UUID, list[UUID]]:
    """An agent with ``count`` executions one second apart; their ids newest first."""
    agent_id, user_id = await new_agent(engine)
    made = [
        await add_execution(engine, agent_id, user_id, start=T0 + timedelta(seconds=i))
        for i in range(count)
    ]
    return agent_id, user_id, made[::-1]


async def get_ok(client: httpx.AsyncClient, url: str, **params: Any) -> dict[str, Any]:
    """The JSON body of a GET that must succeed."""
    response = await client.get(url, params=params)
    assert response.status_code == 200, f"GET {url} {params}: {response.text}"
    body: dict[str, Any] = response.json()
    return body


async def walk(client: httpx.AsyncClient, url: str, **params: Any) -> list[dict[str, Any]]:
    """Every page from the first, following next_cursor to the end."""
    pages = [await get_ok(client, url, **params)]
    while pages[-1]["next_cursor"] is not None:
        assert len(pages) < 100, "the walk does not end"
        pages.append(await get_ok(client, url, **params, cursor=pages[-1]["next_cursor"]))
    return pages


def agent_list(agent_id: UUID) -> str:
    return f"{PREFIX}/agents/{agent_id}/executions"


def user_list(user_id: UUID) -> str:
    return f"{PREFIX}/users/{user_id}/executions"


def ids(body: dict[str, Any]) -> list[UUID]:
    return [UUID(execution["id"]) for execution in body["executions"]]


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """The problem body of an error response, checked against RFC 9457."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json", response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == status, body
    for member in ("type", "title", "detail"):
        assert isinstance(body[member], str), f"{member} missing from {body}"
    assert "Traceback" not in response.text
    assert "SELECT" not in response.text.upper()
    return body
