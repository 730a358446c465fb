"""Both ways of paging a list: limit/offset with an exact total, and signed keyset cursors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from uuid import UUID, uuid4

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from agent_history.api.settings import ApiSettings
from tests.integration.history_api_support import (
    T0,
    add_execution,
    agent_list,
    api_client,
    bearer,
    get_ok,
    history_of,
    ids,
    user_list,
    walk,
)

pytestmark = pytest.mark.integration
SECOND = timedelta(seconds=1)


@pytest.fixture
async def client(api_settings: ApiSettings) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(api_settings, bearer(api_settings, uuid4(), all_scope=True)) as client:
        yield client


async def test_offset_pages_carry_the_exact_total(
    db_engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    agent_id, _, newest_first = await history_of(db_engine, 7)

    pages = {
        offset: await get_ok(client, agent_list(agent_id), limit=3, offset=offset)
        for offset in (0, 3, 6, 7, 50)
    }

    assert [ids(pages[offset]) for offset in (0, 3, 6, 7, 50)] == [
        newest_first[0:3],
        newest_first[3:6],
        newest_first[6:7],
        [],
        [],
    ]
    assert {page["total"] for page in pages.values()} == {7}
    assert [(page["limit"], page["offset"]) for page in pages.values()] == [
        (3, 0),
        (3, 3),
        (3, 6),
        (3, 7),
        (3, 50),
    ]
    assert [pages[o]["next_cursor"] is None for o in (0, 3, 6, 7, 50)] == [
        False,
        False,
        True,
        True,
        True,
    ]


async def test_a_full_page_at_the_end_has_no_next_cursor(
    db_engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    agent_id, _, _ = await history_of(db_engine, 4)
    page = await get_ok(client, agent_list(agent_id), limit=4)
    assert (len(page["executions"]), page["total"], page["next_cursor"]) == (4, 4, None)


@pytest.mark.parametrize("order", ["desc", "asc"])
async def test_cursor_walk_visits_every_execution_once_in_order(
    db_engine: AsyncEngine, client: httpx.AsyncClient, order: str
) -> None:
    agent_id, user_id, newest_first = await history_of(db_engine, 5)
    # Two more at the same start: the id breaks the tie, in the same direction.
    tied = [await add_execution(db_engine, agent_id, user_id, start=T0) for _ in range(2)]
    expected = newest_first[:-1] + sorted([newest_first[-1], *tied], reverse=True)
    if order == "asc":
        expected.reverse()

    pages = await walk(client, agent_list(agent_id), limit=2, order=order)

    assert [len(page["executions"]) for page in pages] == [2, 2, 2, 1]
    assert [execution for page in pages for execution in ids(page)] == expected
    assert pages[0]["total"] == 7
    assert all(page["total"] is None for page in pages[1:]), "cursor pages carry no total"
    assert all(page["offset"] == 0 for page in pages)


async def test_cursor_walk_over_a_growing_history_neither_repeats_nor_skips(
    db_engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    agent_id, user_id, existing = await history_of(db_engine, 9)  # T0 .. T0 + 8 s
    pages = [await get_ok(client, agent_list(agent_id), limit=2)]
    behind: list[UUID] = []  # newer than the cursor: a newest-first walk has passed them
    ahead: list[UUID] = []  # older than every execution: the walk reaches them at its end
    while pages[-1]["next_cursor"] is not None:
        n = len(pages)
        for start in (T0 + timedelta(minutes=n), T0 + timedelta(seconds=8, milliseconds=-n)):
            behind.append(await add_execution(db_engine, agent_id, user_id, start=start))
        ahead.append(await add_execution(db_engine, agent_id, user_id, start=T0 - n * SECOND))
        cursor = pages[-1]["next_cursor"]
        pages.append(await get_ok(client, agent_list(agent_id), limit=2, cursor=cursor))

    walked = [execution for page in pages for execution in ids(page)]
    assert len(walked) == len(set(walked)), f"an execution came twice: {walked}"
    assert [e for e in walked if e in existing] == existing, "a gap among the first executions"
    assert set(walked) - set(existing) == set(ahead), "only executions past the cursor join"
    latest = await get_ok(client, agent_list(agent_id), limit=100)
    assert latest["total"] == len(existing) + len(behind) + len(ahead)


async def test_a_user_list_pages_by_cursor_too(
    db_engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    _, user_id, newest_first = await history_of(db_engine, 5)
    pages = await walk(client, user_list(user_id), limit=2)
    assert [execution for page in pages for execution in ids(page)] == newest_first


async def test_offset_page_cursor_continues_after_it(
    db_engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    agent_id, _, newest_first = await history_of(db_engine, 6)
    middle = await get_ok(client, agent_list(agent_id), limit=2, offset=2)
    rest = await get_ok(client, agent_list(agent_id), limit=10, cursor=middle["next_cursor"])
    assert ids(rest) == newest_first[4:]


async def test_cursor_may_change_page_size_and_fields(
    db_engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    agent_id, _, newest_first = await history_of(db_engine, 4)
    cursor = (await get_ok(client, agent_list(agent_id), limit=1))["next_cursor"]
    rest = await get_ok(client, agent_list(agent_id), limit=5, include="input_data", cursor=cursor)
    assert ids(rest) == newest_first[1:]
