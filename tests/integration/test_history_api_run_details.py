"""What a run carries (model, tags, metadata, parent, usage) in the responses, and the list
filters on it: each alone and combined, paged by offset and by cursor, with exact totals."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from agent_history.api.filters import ExecutionFilter, conditions
from agent_history.api.settings import ApiSettings
from agent_history.read_model.tables import agent_executions
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
    user_list,
    walk,
)

pytestmark = pytest.mark.integration


@pytest.fixture
async def client(api_settings: ApiSettings) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(api_settings, bearer(api_settings, uuid4(), all_scope=True)) as client:
        yield client


async def test_the_detail_and_the_lists_show_what_a_run_carries(
    db_engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    agent_id, user_id = await new_agent(db_engine)
    parent = await add_execution(db_engine, agent_id, user_id)
    child = await add_execution(
        db_engine,
        agent_id,
        user_id,
        start=T0 + timedelta(seconds=1),
        status="completed",
        duration=timedelta(seconds=1),
        model="gpt-4o-mini",
        tags=["nightly", "reports"],
        metadata={"team": "finance", "priority": 2, "ratio": 0.25, "beta": True},
        parent_execution_id=parent,
        input_tokens=1250,
        output_tokens=310,
        # Beyond a float's precision: the amount must come back digit for digit.
        cost=Decimal("12345678901234567.000000000001"),
        cost_currency="EUR",
    )

    detail = await get_ok(client, f"{PREFIX}/executions/{child}")
    assert detail["model"] == "gpt-4o-mini"
    assert detail["tags"] == ["nightly", "reports"]
    assert detail["metadata"] == {"team": "finance", "priority": 2, "ratio": 0.25, "beta": True}
    assert detail["parent_execution_id"] == str(parent)
    assert detail["usage"] == {
        "input_tokens": 1250,
        "output_tokens": 310,
        "cost": {"amount": "12345678901234567.000000000001", "currency": "EUR"},
    }
    # A run that carries nothing: empty tags and metadata, no usage, no parent.
    bare = await get_ok(client, f"{PREFIX}/executions/{parent}")
    assert (bare["model"], bare["tags"], bare["metadata"]) == (None, [], {})
    assert (bare["parent_execution_id"], bare["usage"]) == (None, None)

    listed = (await get_ok(client, agent_list(agent_id)))["executions"]
    by_user = (await get_ok(client, user_list(user_id)))["executions"]
    summary = {k: v for k, v in detail.items() if k not in {"input_data", "output_data"}}
    assert listed[0] == by_user[0] == summary


async def test_usage_shows_what_was_reported_and_a_cost_alone(
    db_engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    agent_id, user_id = await new_agent(db_engine)
    tokens = await add_execution(db_engine, agent_id, user_id, input_tokens=0)
    cost = await add_execution(
        db_engine, agent_id, user_id, cost=Decimal("0.0000001"), cost_currency="USD"
    )
    assert (await get_ok(client, f"{PREFIX}/executions/{tokens}"))["usage"] == {
        "input_tokens": 0,
        "output_tokens": None,
        "cost": None,
    }
    # Never in exponent form (a Decimal's str would say 1E-7).
    assert (await get_ok(client, f"{PREFIX}/executions/{cost}"))["usage"]["cost"] == {
        "amount": "0.0000001",
        "currency": "USD",
    }


@dataclass
class Runs:
    agent_id: UUID
    user_id: UUID
    other_agent: UUID
    made: dict[str, UUID]

    def newest_first(self, *names: str) -> list[UUID]:
        """The ids of these runs as a list shows them: newest first (r0 is the oldest)."""
        return [self.made[name] for name in sorted(names, reverse=True)]


@pytest.fixture
async def runs(db_engine: AsyncEngine) -> Runs:
    """Six runs of one user a second apart, r0 the oldest, r5 on another agent:

    r0 tags a,b  team=finance n=2 beta=true  model m1  top-level
    r1 tags a    team=ops n="2"              model m2  child of r0
    r2 tags b    team=finance n=2.0          model m1  child of r0
    r3 (nothing)                                       top-level
    r4 tags a,b,c team=finance n=3           model m1  child of r1
    r5 tags a    team=finance                model m1  top-level, another agent
    """
    agent_id, user_id = await new_agent(db_engine)
    other_agent, _ = await new_agent(db_engine)
    made: dict[str, UUID] = {}

    async def run(name: str, second: int, agent: UUID = agent_id, **columns: Any) -> None:
        start = T0 + timedelta(seconds=second)
        made[name] = await add_execution(db_engine, agent, user_id, start=start, **columns)

    finance = {"team": "finance"}
    await run("r0", 0, tags=["a", "b"], metadata={**finance, "n": 2, "beta": True}, model="m1")
    await run(
        "r1", 1, tags=["a"], metadata={"team": "ops", "n": "2"}, model="m2",
        parent_execution_id=made["r0"],
    )  # fmt: skip
    await run(
        "r2", 2, tags=["b"], metadata={**finance, "n": 2.0}, model="m1",
        parent_execution_id=made["r0"],
    )  # fmt: skip
    await run("r3", 3)
    await run(
        "r4", 4, tags=["a", "b", "c"], metadata={**finance, "n": 3}, model="m1",
        parent_execution_id=made["r1"],
    )  # fmt: skip
    await run("r5", 5, other_agent, tags=["a"], metadata=finance, model="m1")
    return Runs(agent_id, user_id, other_agent, made)


FILTERS: list[tuple[dict[str, Any], tuple[str, ...]]] = [
    ({"tag": "a"}, ("r0", "r1", "r4")),
    ({"tag": ["a", "b"]}, ("r0", "r4")),
    ({"tag": ["c", "a", "c"]}, ("r4",)),
    ({"tag": "z"}, ()),
    ({"metadata.team": "finance"}, ("r0", "r2", "r4")),
    # The string "2", the number 2 and the number 2.0 alike.
    ({"metadata.n": "2"}, ("r0", "r1", "r2")),
    ({"metadata.n": "2.0"}, ("r0", "r2")),
    ({"metadata.beta": "true"}, ("r0",)),
    ({"metadata.beta": "True"}, ()),
    ({"metadata.team": "finance", "metadata.n": "3"}, ("r4",)),
    ({"metadata.team": ["finance", "ops"]}, ()),
    ({"metadata.nobody": ""}, ()),
    ({"model": "m1"}, ("r0", "r2", "r4")),
    ({"model": "M1"}, ()),
    ({"root": "true"}, ("r0", "r3")),
    ({"root": "false"}, ("r1", "r2", "r4")),
    ({"tag": "a", "model": "m1", "root": "false"}, ("r4",)),
    ({"tag": "b", "metadata.team": "finance", "status": "running"}, ("r0", "r2", "r4")),
    ({"metadata.n": "2", "root": "false", "started_after": "2025-01-15T10:30:02Z"}, ("r2",)),
]


@pytest.mark.parametrize(("params", "expected"), FILTERS)
async def test_each_filter_alone_and_combined_on_both_lists(
    runs: Runs, client: httpx.AsyncClient, params: dict[str, Any], expected: tuple[str, ...]
) -> None:
    for url, params_here in (
        (agent_list(runs.agent_id), params),
        (user_list(runs.user_id), {**params, "agent_id": str(runs.agent_id)}),
    ):
        body = await get_ok(client, url, **params_here)
        assert ids(body) == runs.newest_first(*expected), (url, params_here)
        assert body["total"] == len(expected), (url, params_here, body["total"])


async def test_the_user_list_filters_across_agents(runs: Runs, client: httpx.AsyncClient) -> None:
    body = await get_ok(client, user_list(runs.user_id), tag="a", **{"metadata.team": "finance"})
    assert ids(body) == runs.newest_first("r0", "r4", "r5")
    assert body["total"] == 3


async def test_parent_execution_id_lists_a_runs_children(
    runs: Runs, client: httpx.AsyncClient
) -> None:
    async def children(of: UUID, **params: str) -> list[UUID]:
        listed = await get_ok(client, agent_list(runs.agent_id), parent_execution_id=of, **params)
        assert listed["total"] == len(listed["executions"])
        return ids(listed)

    assert await children(runs.made["r0"]) == runs.newest_first("r1", "r2")
    assert await children(runs.made["r1"]) == runs.newest_first("r4")
    assert await children(runs.made["r4"]) == []
    assert await children(runs.made["r0"], order="asc") == runs.newest_first("r1", "r2")[::-1]
    # Both: a child of r0 that is top-level; none is.
    assert await children(runs.made["r0"], root="true") == []


@pytest.mark.parametrize(
    "params",
    [
        {"tag": "a"},
        {"metadata.team": "finance"},
        {"root": "false"},
        {"model": "m1", "metadata.n": "2"},
    ],
)
@pytest.mark.parametrize("order", ["desc", "asc"])
async def test_a_filtered_list_pages_by_cursor_and_by_offset_with_its_total(
    runs: Runs, client: httpx.AsyncClient, params: dict[str, Any], order: str
) -> None:
    url = agent_list(runs.agent_id)
    everything = await get_ok(client, url, limit=100, order=order, **params)
    expected = ids(everything)
    assert len(expected) >= 2, "a walk needs pages"

    pages = await walk(client, url, limit=1, order=order, **params)
    assert [execution for page in pages for execution in ids(page)] == expected
    assert pages[0]["total"] == len(expected)
    assert all(page["total"] is None for page in pages[1:])

    for offset in range(len(expected) + 1):
        page = await get_ok(client, url, limit=1, offset=offset, order=order, **params)
        assert ids(page) == expected[offset : offset + 1]
        assert page["total"] == len(expected), (offset, page)


@pytest.mark.parametrize(
    ("first", "then"),
    [
        ({"tag": "a"}, {"tag": "b"}),
        ({"tag": "a"}, {}),
        ({"tag": "a"}, {"tag": ["a", "b"]}),
        ({"metadata.team": "finance"}, {"metadata.team": "ops"}),
        ({"metadata.team": "finance"}, {"metadata.Team": "finance"}),
        ({"metadata.team": "finance"}, {}),
        ({"model": "m1"}, {"model": "m2"}),
        ({"root": "false"}, {"root": "true"}),
        ({"root": "false"}, {}),
        ({}, {"root": "false"}),
        ({}, {"parent_execution_id": "00000000-0000-4000-8000-000000000000"}),
    ],
)
async def test_a_cursor_is_bound_to_its_filters(
    runs: Runs, client: httpx.AsyncClient, first: dict[str, Any], then: dict[str, Any]
) -> None:
    url = agent_list(runs.agent_id)
    cursor = (await get_ok(client, url, limit=1, **first))["next_cursor"]
    assert cursor is not None
    body = assert_problem(await client.get(url, params={**then, "cursor": cursor}), 400)
    assert "different query" in body["detail"]
    # The same filters, given in another order or repeated, are the same query.
    same = {k: v[::-1] if isinstance(v, list) else v for k, v in first.items()}
    assert (await client.get(url, params={**same, "cursor": cursor})).status_code == 200


async def test_filters_see_only_the_callers_runs_and_count_only_them(
    db_engine: AsyncEngine, api_settings: ApiSettings
) -> None:
    agent_id, ada = await new_agent(db_engine)
    grace = await new_user(db_engine, "Grace")
    adas = await add_execution(db_engine, agent_id, ada, tags=["x"], metadata={"k": "v"})
    await add_execution(db_engine, agent_id, grace, tags=["x"], metadata={"k": "v"})
    async with api_client(api_settings, bearer(api_settings, ada)) as client:
        for params in ({"tag": "x"}, {"metadata.k": "v"}, {"root": "true"}):
            body = await get_ok(client, agent_list(agent_id), **params)
            assert (ids(body), body["total"]) == ([adas], 1), params
        response = await client.get(user_list(grace), params={"tag": "x"})
        assert_problem(response, 404)


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"metadata.": "x"}, "metadata."),
        ({"metadata." + "k" * 201: "x"}, "metadata." + "k" * 201),
        ({"metadata": "x"}, "metadata"),
        ({"metadatax": "x"}, "metadatax"),
        ({"tag": ""}, "tag"),
        ({"tag": "t" * 201}, "tag"),
        ({"model": ""}, "model"),
        ({"root": "maybe"}, "root"),
        ({"parent_execution_id": "r0"}, "parent_execution_id"),
    ],
)
async def test_a_bad_filter_is_a_422_problem_naming_it(
    client: httpx.AsyncClient, params: dict[str, str], name: str
) -> None:
    for url in (agent_list(uuid4()), user_list(uuid4())):
        body = assert_problem(await client.get(url, params=params), 422)
        assert body["type"] == "urn:agent-history:problem:invalid-parameters"
        assert [(e["in"], e["name"]) for e in body["errors"]] == [("query", name)], body
        assert name in body["detail"]


async def test_a_nul_in_a_filter_is_refused_not_sent_to_the_database(
    client: httpx.AsyncClient,
) -> None:
    for params in ({"tag": "a\x00"}, {"model": "\x00"}, {"metadata.k": "\x00"}):
        assert_problem(await client.get(agent_list(uuid4()), params=params), 422)


@pytest.mark.parametrize(
    ("where", "index"),
    [
        (ExecutionFilter(tags=frozenset({"a", "b"})), "ix_agent_executions_tags"),
        (
            ExecutionFilter(metadata=frozenset({("team", "finance"), ("n", "2")})),
            "ix_agent_executions_metadata",
        ),
        (ExecutionFilter(parent_execution_id=uuid4()), "ix_agent_executions_children"),
    ],
)
async def test_the_filters_are_served_by_their_indexes(
    db_engine: AsyncEngine, where: ExecutionFilter, index: str
) -> None:
    """What migration 0005's indexes are for (with sequential scans off: the test tables are
    too small for the planner to prefer an index on its own)."""
    bound = where.bound()
    statement = select(agent_executions.c.id).where(*conditions(bound)).params(bound)
    sql = str(statement.compile(db_engine.sync_engine, compile_kwargs={"literal_binds": True}))
    async with db_engine.connect() as conn:
        await conn.exec_driver_sql("SET enable_seqscan = off")
        plan = "\n".join(row[0] for row in await conn.exec_driver_sql(f"EXPLAIN {sql}"))
    assert index in plan, f"{sql}\n{plan}"
