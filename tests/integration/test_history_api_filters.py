"""Filters, order and field selection on the agent and user lists."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from agent_history.api.settings import ApiSettings
from agent_history.contract.statuses import STATUSES
from tests.integration.history_api_support import (
    T0,
    TERMINAL,
    add_execution,
    agent_list,
    api_client,
    assert_problem,
    bearer,
    get_ok,
    ids,
    new_agent,
    new_user,
    user_list,
)

pytestmark = pytest.mark.integration


@pytest.fixture
async def client(api_settings: ApiSettings) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(api_settings, bearer(api_settings, uuid4(), all_scope=True)) as client:
        yield client


async def _one_per_status(engine: AsyncEngine) -> tuple[UUID, dict[str, UUID]]:
    """An agent with one execution of each status, a second apart in STATUSES order."""
    agent_id, user_id = await new_agent(engine)
    made: dict[str, UUID] = {}
    for i, status in enumerate(STATUSES):
        ended = timedelta(seconds=1) if status in TERMINAL else None
        made[status] = await add_execution(
            engine,
            agent_id,
            user_id,
            start=T0 + timedelta(seconds=i),
            status=status,
            duration=ended,
        )
    return agent_id, made


async def test_status_is_repeatable_and_combines_with_its_synonym(
    db_engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    agent_id, made = await _one_per_status(db_engine)

    async def listed(**params: Any) -> set[str]:
        body = await get_ok(client, agent_list(agent_id), **params)
        assert body["total"] == len(body["executions"]), body
        return {execution["status"] for execution in body["executions"]}

    assert await listed() == set(made)
    assert await listed(status="completed") == {"completed"}
    assert await listed(status="timed_out") == {"timed_out"}
    assert await listed(status=["completed", "failed"]) == {"completed", "failed"}
    assert await listed(status_filter="running") == {"running"}
    assert await listed(status_filter=["pending", "running"]) == {"pending", "running"}
    assert await listed(status="completed", status_filter=["failed", "cancelled"]) == {
        "completed",
        "failed",
        "cancelled",
    }
    assert await listed(status=["failed", "failed"], status_filter="failed") == {"failed"}


async def test_user_id_narrows_an_agent_list(
    db_engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    agent_id, ada = await new_agent(db_engine)
    grace = await new_user(db_engine, "Grace")
    by_ada = await add_execution(db_engine, agent_id, ada)
    by_grace = await add_execution(db_engine, agent_id, grace)

    assert ids(await get_ok(client, agent_list(agent_id), user_id=str(ada))) == [by_ada]
    assert ids(await get_ok(client, agent_list(agent_id), user_id=str(grace))) == [by_grace]
    nobody = await get_ok(client, agent_list(agent_id), user_id=str(uuid4()))
    assert (nobody["executions"], nobody["total"]) == ([], 0)


async def test_started_after_is_inclusive_and_started_before_exclusive(
    db_engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    agent_id, user_id = await new_agent(db_engine)
    at = {
        second: await add_execution(
            db_engine, agent_id, user_id, start=T0 + timedelta(seconds=second)
        )
        for second in range(5)
    }

    async def listed(**params: str) -> list[UUID]:
        return ids(await get_ok(client, agent_list(agent_id), order="asc", **params))

    assert await listed(started_after="2025-01-15T10:30:02Z") == [at[2], at[3], at[4]]
    assert await listed(started_before="2025-01-15T10:30:02Z") == [at[0], at[1]]
    window = {"started_after": "2025-01-15T10:30:01Z", "started_before": "2025-01-15T10:30:03Z"}
    assert await listed(**window) == [at[1], at[2]]
    # The same instant written with another offset.
    assert await listed(started_after="2025-01-15T12:30:03+02:00") == [at[3], at[4]]
    assert await listed(started_after="2025-01-15T10:30:03Z", started_before=T0.isoformat()) == []


@pytest.mark.parametrize("name", ["started_after", "started_before"])
@pytest.mark.parametrize("value", ["2025-01-15T10:30:00", "yesterday", "1736937000", "-2.2e-16"])
async def test_a_time_without_offset_is_a_422_naming_it(
    client: httpx.AsyncClient, name: str, value: str
) -> None:
    response = await client.get(agent_list(uuid4()), params={name: value})
    body = assert_problem(response, 422)
    assert [(e["in"], e["name"]) for e in body["errors"]] == [("query", name)], body


async def test_a_valid_time_beyond_the_years_in_utc_is_a_bound_at_their_end(
    db_engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    """0001-01-01T00:00:00+01:00 is valid RFC 3339 (the schema's date-time) but before year 1 in
    UTC: no run can be before it, every run is after it."""
    agent_id, made = await _one_per_status(db_engine)
    early, late = "0001-01-01T00:00:00+01:00", "9999-12-31T23:30:00-01:00"
    listed = ids(await get_ok(client, agent_list(agent_id), started_after=early))
    assert sorted(listed) == sorted(made.values())
    assert ids(await get_ok(client, agent_list(agent_id), started_before=early)) == []
    listed = ids(await get_ok(client, agent_list(agent_id), started_before=late))
    assert sorted(listed) == sorted(made.values())


async def test_order_asc_is_oldest_first(db_engine: AsyncEngine, client: httpx.AsyncClient) -> None:
    agent_id, made = await _one_per_status(db_engine)
    newest_first = ids(await get_ok(client, agent_list(agent_id)))
    oldest_first = ids(await get_ok(client, agent_list(agent_id), order="asc"))
    assert oldest_first == list(made.values())
    assert newest_first == oldest_first[::-1]


async def test_include_adds_only_the_payloads_asked_for(
    db_engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    agent_id, user_id = await new_agent(db_engine)
    await add_execution(
        db_engine, agent_id, user_id, input_data={"prompt": "p"}, output_data={"answer": 1}
    )

    async def payloads(**params: str) -> dict[str, Any]:
        (execution,) = (await get_ok(client, agent_list(agent_id), **params))["executions"]
        return {k: execution[k] for k in ("input_data", "output_data") if k in execution}

    assert await payloads() == {}
    assert await payloads(include="") == {}
    assert await payloads(include="input_data") == {"input_data": {"prompt": "p"}}
    assert await payloads(include="output_data") == {"output_data": {"answer": 1}}
    both = {"input_data": {"prompt": "p"}, "output_data": {"answer": 1}}
    assert await payloads(include="output_data,input_data") == both


@pytest.mark.parametrize("include", ["secrets", "input_data,secrets", "input_data,", "*"])
async def test_unknown_include_is_a_422_naming_include(
    client: httpx.AsyncClient, include: str
) -> None:
    response = await client.get(agent_list(uuid4()), params={"include": include})
    body = assert_problem(response, 422)
    assert [(e["in"], e["name"]) for e in body["errors"]] == [("query", "include")], body


async def test_user_list_spans_agents_and_takes_the_same_filters(
    db_engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    first_agent, user_id = await new_agent(db_engine)
    second_agent, other_user = await new_agent(db_engine)
    a = await add_execution(db_engine, first_agent, user_id, start=T0, status="running")
    b = await add_execution(
        db_engine,
        second_agent,
        user_id,
        start=T0 + timedelta(seconds=1),
        status="completed",
        duration=timedelta(seconds=1),
        input_data={"prompt": "p"},
    )
    await add_execution(db_engine, second_agent, other_user, start=T0)

    url = user_list(user_id)
    assert ids(await get_ok(client, url)) == [b, a]
    assert ids(await get_ok(client, url, order="asc")) == [a, b]
    assert ids(await get_ok(client, url, agent_id=str(first_agent))) == [a]
    assert ids(await get_ok(client, url, status="completed")) == [b]
    assert ids(await get_ok(client, url, started_after="2025-01-15T10:30:01Z")) == [b]
    assert ids(await get_ok(client, url, started_before="2025-01-15T10:30:01Z")) == [a]
    listed = await get_ok(client, url, include="input_data", status="completed")
    assert listed["executions"][0]["input_data"] == {"prompt": "p"}
    assert (await get_ok(client, url))["total"] == 2
