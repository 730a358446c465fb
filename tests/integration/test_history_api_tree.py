"""GET /executions/{id}/tree: a run and its descendants, bounded by depth and count, showing
only what the caller may read, and finite on a cycle."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from agent_history.api.settings import ApiSettings
from agent_history.read_model.tables import agent_executions
from tests.integration.history_api_support import (
    PREFIX,
    T0,
    add_execution,
    api_client,
    assert_problem,
    bearer,
    get_ok,
    new_agent,
    new_user,
)

pytestmark = pytest.mark.integration


def tree_url(execution_id: UUID) -> str:
    return f"{PREFIX}/executions/{execution_id}/tree"


@pytest.fixture
async def client(api_settings: ApiSettings) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(api_settings, bearer(api_settings, uuid4(), all_scope=True)) as client:
        yield client


@dataclass
class Family:
    user_id: UUID
    made: dict[str, UUID]

    def named(self, body: dict[str, Any]) -> list[tuple[str, int]]:
        """The tree's runs as (name, depth), in the order given."""
        names = {execution_id: name for name, execution_id in self.made.items()}
        return [(names[UUID(node["id"])], node["depth"]) for node in body["executions"]]


@pytest.fixture
async def family(db_engine: AsyncEngine) -> Family:
    """root -> (a at +2 s, b at +1 s); b -> b1 -> b11; a -> a1. Children are made in reverse
    order of their start, so that only the start can put them in order."""
    agent_id, user_id = await new_agent(db_engine)
    made: dict[str, UUID] = {}

    async def run(name: str, second: int, parent: str | None) -> None:
        made[name] = await add_execution(
            db_engine,
            agent_id,
            user_id,
            start=T0 + timedelta(seconds=second),
            parent_execution_id=made[parent] if parent else None,
            tags=[name],
        )

    await run("root", 0, None)
    await run("a", 2, "root")
    await run("b", 1, "root")
    await run("a1", 3, "a")
    await run("b1", 4, "b")
    await run("b11", 5, "b1")
    return Family(user_id, made)


EVERYTHING = [("root", 0), ("b", 1), ("b1", 2), ("b11", 3), ("a", 1), ("a1", 2)]


async def test_the_tree_is_depth_first_with_children_oldest_first(
    family: Family, client: httpx.AsyncClient
) -> None:
    body = await get_ok(client, tree_url(family.made["root"]))
    assert family.named(body) == EVERYTHING
    assert (body["depth"], body["limit"], body["truncated"]) == (5, 500, None)
    root, b = body["executions"][:2]
    assert (root["parent_execution_id"], b["parent_execution_id"]) == (None, root["id"])
    # Each node is the list item shape, with its depth.
    listed = await get_ok(client, f"{PREFIX}/executions/{family.made['root']}")
    assert {k: v for k, v in root.items() if k != "depth"} == {
        k: v for k, v in listed.items() if k not in {"input_data", "output_data"}
    }


async def test_a_subtree_starts_at_the_run_asked_for(
    family: Family, client: httpx.AsyncClient
) -> None:
    body = await get_ok(client, tree_url(family.made["b"]))
    assert family.named(body) == [("b", 0), ("b1", 1), ("b11", 2)]
    leaf = await get_ok(client, tree_url(family.made["b11"]), depth=0)
    assert (family.named(leaf), leaf["truncated"]) == ([("b11", 0)], None)


@pytest.mark.parametrize(
    ("depth", "expected", "truncated"),
    [
        (0, [("root", 0)], "depth"),
        (1, [("root", 0), ("b", 1), ("a", 1)], "depth"),
        (2, [("root", 0), ("b", 1), ("b1", 2), ("a", 1), ("a1", 2)], "depth"),
        (3, EVERYTHING, None),
        (20, EVERYTHING, None),
    ],
)
async def test_depth_cuts_the_tree_and_says_so(
    family: Family,
    client: httpx.AsyncClient,
    depth: int,
    expected: list[tuple[str, int]],
    truncated: str | None,
) -> None:
    body = await get_ok(client, tree_url(family.made["root"]), depth=depth)
    assert family.named(body) == expected
    assert (body["depth"], body["truncated"]) == (depth, truncated)


@pytest.mark.parametrize(
    ("limit", "expected", "truncated"),
    [
        (1, [("root", 0)], "limit"),
        # The shallowest first: a level is complete before the next begins.
        (3, [("root", 0), ("b", 1), ("a", 1)], "limit"),
        (5, [("root", 0), ("b", 1), ("b1", 2), ("a", 1), ("a1", 2)], "limit"),
        (6, EVERYTHING, None),
    ],
)
async def test_limit_cuts_the_tree_and_says_so(
    family: Family,
    client: httpx.AsyncClient,
    limit: int,
    expected: list[tuple[str, int]],
    truncated: str | None,
) -> None:
    body = await get_ok(client, tree_url(family.made["root"]), limit=limit)
    assert family.named(body) == expected
    assert (body["limit"], body["truncated"]) == (limit, truncated)


async def test_a_wide_level_is_cut_at_its_oldest_children(
    db_engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    agent_id, user_id = await new_agent(db_engine)
    root = await add_execution(db_engine, agent_id, user_id)
    children = [
        await add_execution(
            db_engine,
            agent_id,
            user_id,
            start=T0 + timedelta(seconds=30 - n),
            parent_execution_id=root,
        )
        for n in range(30)
    ]
    oldest_first = children[::-1]
    body = await get_ok(client, tree_url(root), limit=10)
    assert [UUID(node["id"]) for node in body["executions"]] == [root, *oldest_first[:9]]
    assert body["truncated"] == "limit"


async def test_a_cycle_ends(db_engine: AsyncEngine, client: httpx.AsyncClient) -> None:
    """A's parent is B and B's parent is A (the contract cannot stop two runs naming each
    other): each appears once, below the one asked for."""
    agent_id, user_id = await new_agent(db_engine)
    a = await add_execution(db_engine, agent_id, user_id)
    b = await add_execution(
        db_engine, agent_id, user_id, start=T0 + timedelta(seconds=1), parent_execution_id=a
    )
    c = await add_execution(
        db_engine, agent_id, user_id, start=T0 + timedelta(seconds=2), parent_execution_id=b
    )
    async with db_engine.begin() as conn:
        await conn.execute(
            update(agent_executions).where(agent_executions.c.id == a).values(parent_execution_id=b)
        )
    for depth in (1, 5, 20):
        body = await get_ok(client, tree_url(a), depth=depth)
        got = [(UUID(node["id"]), node["depth"]) for node in body["executions"]]
        assert got == [(a, 0), (b, 1), (c, 2)][: depth + 1], depth
    from_b = await get_ok(client, tree_url(b), depth=20)
    assert [(UUID(n["id"]), n["depth"]) for n in from_b["executions"]] == [(b, 0), (a, 1), (c, 1)]
    assert from_b["truncated"] is None


async def test_a_caller_sees_a_tree_of_their_own_runs_only(
    db_engine: AsyncEngine, api_settings: ApiSettings
) -> None:
    """Below a run of the caller's, another user's run is left out with everything below it
    (even the caller's own runs there); another user's run is a 404 as a root."""
    agent_id, ada = await new_agent(db_engine)
    grace = await new_user(db_engine, "Grace")

    async def run(user: UUID, parent: UUID | None, second: int) -> UUID:
        start = T0 + timedelta(seconds=second)
        return await add_execution(
            db_engine, agent_id, user, start=start, parent_execution_id=parent
        )

    root = await run(ada, None, 0)
    adas_child = await run(ada, root, 1)
    graces_child = await run(grace, root, 2)
    adas_below_grace = await run(ada, graces_child, 3)
    graces_below_ada = await run(grace, adas_child, 4)

    def tree_of(body: dict[str, Any]) -> list[UUID]:
        return [UUID(node["id"]) for node in body["executions"]]

    async with api_client(api_settings, bearer(api_settings, ada)) as client:
        assert tree_of(await get_ok(client, tree_url(root))) == [root, adas_child]
        assert_problem(await client.get(tree_url(graces_child)), 404)
        assert_problem(await client.get(tree_url(uuid4())), 404)
    async with api_client(api_settings, bearer(api_settings, grace)) as client:
        assert_problem(await client.get(tree_url(root)), 404)
        assert tree_of(await get_ok(client, tree_url(graces_child))) == [graces_child]
    async with api_client(api_settings, bearer(api_settings, uuid4(), all_scope=True)) as client:
        assert tree_of(await get_ok(client, tree_url(root))) == [
            root,
            adas_child,
            graces_below_ada,
            graces_child,
            adas_below_grace,
        ]


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"depth": "21"}, "depth"),
        ({"depth": "-1"}, "depth"),
        ({"limit": "0"}, "limit"),
        ({"limit": "5001"}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"tag": "a"}, "tag"),
    ],
)
async def test_bad_tree_parameters_are_422_problems(
    client: httpx.AsyncClient, params: dict[str, str], name: str
) -> None:
    body = assert_problem(await client.get(tree_url(uuid4()), params=params), 422)
    assert [(e["in"], e["name"]) for e in body["errors"]] == [("query", name)], body


async def test_a_tree_needs_a_token(api_settings: ApiSettings) -> None:
    async with api_client(api_settings) as client:
        assert_problem(await client.get(tree_url(uuid4())), 401)
