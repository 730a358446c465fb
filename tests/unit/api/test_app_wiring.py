"""The API's wiring without a database: validation, probes, error handlers and OpenAPI."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from uuid import uuid4

import httpx
import pytest

from agent_history.settings import ApiSettings
from api.app import create_app

# Nothing listens on port 1: every connection is refused at once.
UNREACHABLE = "postgresql+asyncpg://nobody:nothing@127.0.0.1:1/nowhere"
PREFIX = "/api/v1/agent-studio"


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(ApiSettings(database_url=UNREACHABLE))
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://api") as client,
    ):
        yield client


def _list_url() -> str:
    return f"{PREFIX}/agents/{uuid4()}/executions"


def _assert_names(body: dict[str, Any], where: str, name: str) -> None:
    locs = [error["loc"][:2] for error in body["detail"]]
    assert [where, name] in locs, f"expected an error at {where}.{name}, got {body}"
    assert f"invalid {where} parameter {name}:" in body["message"], body["message"]


def test_create_app_connects_to_nothing_before_startup() -> None:
    app = create_app(ApiSettings(database_url=UNREACHABLE))
    assert not hasattr(app.state, "engine")


async def test_healthz_is_ok_without_a_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "detail": None}


async def test_readyz_is_503_when_the_database_is_unreachable(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert "database unreachable" in body["detail"]


async def test_history_is_503_when_the_database_is_unreachable(client: httpx.AsyncClient) -> None:
    response = await client.get(_list_url())
    assert response.status_code == 503
    assert "database unavailable" in response.json()["detail"]


@pytest.mark.parametrize(
    ("url", "name"),
    [
        (f"{PREFIX}/agents/not-a-uuid/executions", "agent_id"),
        (f"{PREFIX}/executions/not-a-uuid", "execution_id"),
    ],
)
async def test_invalid_uuid_is_422_naming_the_path_parameter(
    client: httpx.AsyncClient, url: str, name: str
) -> None:
    response = await client.get(url)
    assert response.status_code == 422
    _assert_names(response.json(), "path", name)


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 101}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"offset": -1}, "offset"),
        ({"offset": 2**63}, "offset"),
        ({"status": "bogus"}, "status"),
        ({"status": ["running", "bogus"]}, "status"),
        ({"status_filter": "RUNNING"}, "status_filter"),
    ],
)
async def test_invalid_query_parameter_is_422_naming_it(
    client: httpx.AsyncClient, params: dict[str, Any], name: str
) -> None:
    response = await client.get(_list_url(), params=params)
    assert response.status_code == 422
    _assert_names(response.json(), "query", name)


async def test_every_invalid_parameter_is_named(client: httpx.AsyncClient) -> None:
    response = await client.get(_list_url(), params={"limit": 0, "offset": -1, "status": "x"})
    assert response.status_code == 422
    for name in ("limit", "offset", "status"):
        _assert_names(response.json(), "query", name)


async def test_openapi_documents_the_response_models(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    listing = spec["paths"][f"{PREFIX}/agents/{{agent_id}}/executions"]["get"]
    ok = listing["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/ExecutionPage"}
    assert {"422", "503"} <= listing["responses"].keys()
    params = {param["name"] for param in listing["parameters"]}
    assert params == {"agent_id", "limit", "offset", "status", "status_filter"}
    detail = spec["paths"][f"{PREFIX}/executions/{{execution_id}}"]["get"]["responses"]
    assert detail["404"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/ErrorBody"
    }
    execution = spec["components"]["schemas"]["Execution"]
    assert execution["examples"], "the Execution schema should carry an example"
    hidden = {"input_rank", "input_time", "input_event_id", "terminal_event_id"}
    assert not hidden & execution["properties"].keys()
    assert (await client.get("/docs")).status_code == 200
