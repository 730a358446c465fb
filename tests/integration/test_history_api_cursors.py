"""Cursors that cannot continue: edited, from another query or caller, or with an offset."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from uuid import uuid4

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from agent_history.api.settings import ApiSettings
from tests.integration.history_api_support import (
    agent_list,
    api_client,
    assert_problem,
    bearer,
    get_ok,
    history_of,
)

pytestmark = pytest.mark.integration


@pytest.fixture
async def client(api_settings: ApiSettings) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(api_settings, bearer(api_settings, uuid4(), all_scope=True)) as client:
        yield client


async def test_cursor_with_an_offset_is_a_400(
    db_engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    agent_id, _, _ = await history_of(db_engine, 3)
    cursor = (await get_ok(client, agent_list(agent_id), limit=1))["next_cursor"]
    response = await client.get(agent_list(agent_id), params={"cursor": cursor, "offset": 1})
    body = assert_problem(response, 400)
    assert "offset" in body["detail"]


@pytest.mark.parametrize(
    "change",
    [
        {"order": "asc"},
        {"status": "running"},
        {"user_id": "00000000-0000-4000-8000-000000000000"},
        {"started_after": "2020-01-01T00:00:00Z"},
        {"started_before": "2030-01-01T00:00:00+02:00"},
        {"agent": "another"},
    ],
)
async def test_cursor_from_another_query_is_a_400(
    db_engine: AsyncEngine, client: httpx.AsyncClient, change: dict[str, str]
) -> None:
    agent_id, _, _ = await history_of(db_engine, 3)
    cursor = (await get_ok(client, agent_list(agent_id), limit=1))["next_cursor"]
    url = agent_list(uuid4() if change.pop("agent", None) else agent_id)

    response = await client.get(url, params={**change, "cursor": cursor})

    body = assert_problem(response, 400)
    assert body["type"] == "urn:agent-history:problem:invalid-cursor"
    assert "different query" in body["detail"]


async def test_cursor_of_another_user_is_a_400(
    db_engine: AsyncEngine, api_settings: ApiSettings
) -> None:
    agent_id, user_id, _ = await history_of(db_engine, 3)
    async with api_client(api_settings, bearer(api_settings, user_id)) as owner:
        cursor = (await get_ok(owner, agent_list(agent_id), limit=1))["next_cursor"]
    async with api_client(api_settings, bearer(api_settings, uuid4())) as stranger:
        response = await stranger.get(agent_list(agent_id), params={"cursor": cursor})
    assert_problem(response, 400)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda c: c[:-2] + ("AA" if not c.endswith("AA") else "BB"),
        lambda c: ("B" if c[0] != "B" else "C") + c[1:],
        lambda c: c[:10],
        lambda c: c + "AAAA",
        lambda c: "not a cursor!",
        lambda c: "é" * 8,
        lambda c: "",
    ],
    ids=["mac", "body", "truncated", "extended", "garbage", "non-ascii", "empty"],
)
async def test_tampered_cursor_is_a_400_problem(
    db_engine: AsyncEngine, client: httpx.AsyncClient, tamper: Any
) -> None:
    agent_id, _, _ = await history_of(db_engine, 3)
    cursor = (await get_ok(client, agent_list(agent_id), limit=1))["next_cursor"]
    response = await client.get(agent_list(agent_id), params={"cursor": tamper(cursor)})
    body = assert_problem(response, 400)
    assert body["title"] == "Invalid cursor"
