"""The API serves the event contract: the document as JSON, and a page that needs no internet."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from agent_history.api.app import create_app
from agent_history.api.settings import ApiSettings
from agent_history.contract.asyncapi import EVENTS, asyncapi_document

UNREACHABLE = "postgresql+asyncpg://nobody:nothing@127.0.0.1:1/nowhere"


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    """No token and no database: the contract is open to anyone, like /docs."""
    transport = httpx.ASGITransport(app=create_app(ApiSettings(database_url=UNREACHABLE)))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        yield client


async def test_the_document_is_served_as_json(client: httpx.AsyncClient) -> None:
    response = await client.get("/asyncapi.json")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == asyncapi_document()


async def test_the_page_shows_every_event_type_and_loads_nothing_from_elsewhere(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/asyncapi")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    for model in EVENTS:
        assert f'id="message-{model.__name__}.binary"' in page
        assert f'id="schema-{model.__name__}"' in page
    assert "<script" not in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page), "an external resource"
