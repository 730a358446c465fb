"""The list pages served in front of FastAPI (api.fast_lists) answer exactly as FastAPI does.

One started app without the fast path is the reference; the same app with FastLists in front
of it answers the same requests. Both share the engine and the change feed, so even the ETags
must be equal. Every request is sent to both, and status, headers and body must match; the
test also records which requests FastLists handed on to FastAPI, so that each case is known to
take the path it is meant to.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID, uuid4

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import ASGIApp, Receive, Scope, Send

from agent_history.api.app import create_app
from agent_history.api.fast_lists import FastLists, list_routes
from agent_history.api.routes import LISTS, history
from agent_history.api.settings import ApiSettings
from tests.integration.history_api_support import (
    PREFIX,
    T0,
    add_execution,
    agent_list,
    bearer,
    new_agent,
    user_list,
)

pytestmark = pytest.mark.integration


@dataclass
class Paths:
    fastapi: httpx.AsyncClient  # the app alone
    fast: httpx.AsyncClient  # FastLists in front of the same app
    handed: list[str]  # paths FastLists handed on to the app

    async def same(self, method: str, url: str, **kwargs: object) -> httpx.Response:
        """The answer of both paths, which must be the same."""
        expected = await self.fastapi.request(method, url, **kwargs)  # type: ignore[arg-type]
        got = await self.fast.request(method, url, **kwargs)  # type: ignore[arg-type]
        assert (got.status_code, got.headers.multi_items(), got.content) == (
            expected.status_code,
            expected.headers.multi_items(),
            expected.content,
        ), f"{method} {url} {kwargs}"
        return got


def _in_front(app: FastAPI, handed: list[str]) -> ASGIApp:
    async def fastapi(scope: Scope, receive: Receive, send: Send) -> None:
        handed.append(scope["path"])
        await app(scope, receive, send)

    fast = FastLists(fastapi, list_routes(history.routes, LISTS))

    async def served(scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = app  # as the app sets it before its middleware
        await fast(scope, receive, send)

    return served


@pytest.fixture
async def paths(api_settings: ApiSettings) -> AsyncIterator[Paths]:
    app = create_app(api_settings, fast_lists=False)
    handed: list[str] = []
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as a,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=_in_front(app, handed)),
            base_url="http://api",
        ) as b,
    ):
        yield Paths(a, b, handed)


@pytest.fixture
async def runs(db_engine: AsyncEngine) -> tuple[UUID, UUID]:
    """An agent with five runs of one user, two with tags, metadata, payloads and usage."""
    agent_id, user_id = await new_agent(db_engine)
    for i in range(5):
        await add_execution(
            db_engine,
            agent_id,
            user_id,
            start=T0 + timedelta(minutes=i),
            status="completed" if i % 2 else "failed",
            duration=timedelta(seconds=i + 1),
            tags=["a", "b"] if i < 2 else [],
            metadata={"team": "x", "n": i},
            input_data={"q": i},
            input_tokens=10 * i,
            cost=0.25 * i,
        )
    return agent_id, user_id


SERVED = [
    {"limit": 2},
    {"limit": 2, "order": "asc", "include": "input_data,output_data"},
    {"status": ["completed", "failed"], "status_filter": "running"},
    {"tag": ["a", "b"], "metadata.team": "x", "metadata.n": "1"},
    {"started_after": "2025-01-15T10:31:00Z", "started_before": "2025-01-15T12:33:00+02:00"},
    {"root": "true", "model": "m", "offset": 1},
    {"offset": 99},
    {"cursor": "not-a-cursor"},
]
HANDED_ON = [
    {"limit": 0},
    {"limit": "many"},
    {"colour": "red"},
    {"status": "lost"},
    {"metadata.": "x"},
    {"started_after": "yesterday"},
    {"include": "everything"},
]


@pytest.mark.parametrize("params", SERVED)
async def test_a_list_page_is_served_in_front_and_answered_as_fastapi_does(
    api_settings: ApiSettings, paths: Paths, runs: tuple[UUID, UUID], params: dict[str, object]
) -> None:
    agent_id, user_id = runs
    everyone = bearer(api_settings, uuid4(), all_scope=True)
    own = bearer(api_settings, user_id)
    for url, headers in ((agent_list(agent_id), everyone), (user_list(user_id), own)):
        await paths.same("GET", url, params=params, headers=headers)
    assert paths.handed == []


async def test_cursors_etags_and_refusals_by_the_endpoint_are_answered_as_fastapi_does(
    api_settings: ApiSettings, paths: Paths, runs: tuple[UUID, UUID]
) -> None:
    agent_id, user_id = runs
    headers = bearer(api_settings, user_id)
    url = agent_list(agent_id)
    first = await paths.same("GET", url, params={"limit": 2}, headers=headers)
    cursor = first.json()["next_cursor"]
    await paths.same("GET", url, params={"limit": 2, "cursor": cursor}, headers=headers)
    await paths.same("GET", url, params={"cursor": cursor, "offset": 1}, headers=headers)
    await paths.same("GET", url, params={"cursor": cursor, "order": "asc"}, headers=headers)
    unchanged = headers | {"If-None-Match": first.headers["etag"]}
    again = await paths.same("GET", url, params={"limit": 2}, headers=unchanged)
    assert again.status_code == 304
    # Another user's list without the all-executions scope: the endpoint's 404.
    assert (await paths.same("GET", user_list(uuid4()), headers=headers)).status_code == 404
    assert paths.handed == []


@pytest.mark.parametrize("params", HANDED_ON)
async def test_invalid_parameters_are_handed_on_to_fastapi(
    api_settings: ApiSettings, paths: Paths, runs: tuple[UUID, UUID], params: dict[str, object]
) -> None:
    agent_id, _ = runs
    headers = bearer(api_settings, uuid4(), all_scope=True)
    response = await paths.same("GET", agent_list(agent_id), params=params, headers=headers)
    assert response.status_code == 422
    assert paths.handed == [agent_list(agent_id)]


async def test_other_requests_are_handed_on_to_fastapi(
    api_settings: ApiSettings, paths: Paths, runs: tuple[UUID, UUID]
) -> None:
    agent_id, user_id = runs
    url = agent_list(agent_id)
    good = bearer(api_settings, user_id)
    cases: list[tuple[str, str, dict[str, str], int]] = [
        ("GET", url, {}, 401),
        ("GET", url, {"Authorization": "Bearer not.a.jwt"}, 401),
        ("GET", url, {"Authorization": "Basic dXNlcjpwdw=="}, 401),
        ("GET", f"{PREFIX}/agents/not-a-uuid/executions", good, 422),
        ("POST", url, good, 405),
        ("HEAD", url, good, 405),  # FastAPI serves no HEAD for a GET route
        ("GET", f"{url}/stats", good, 200),
    ]
    for method, target, headers, status in cases:
        paths.handed.clear()
        response = await paths.same(method, target, headers=headers)
        assert response.status_code == status, (method, target, response.text)
        assert paths.handed == [target.split("?")[0]], (method, target)
