"""The API's wiring without a database: validation, probes, problems, start-up and OpenAPI."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any
from uuid import uuid4

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from agent_history.api.app import create_app
from agent_history.api.auth import mint_token
from agent_history.api.settings import ApiSettings

# Nothing listens on port 1: every connection is refused at once.
UNREACHABLE = "postgresql+asyncpg://nobody:nothing@127.0.0.1:1/nowhere"
PREFIX = "/api/v1/agent-studio"
SETTINGS = ApiSettings(database_url=UNREACHABLE)
TOKEN = {"Authorization": f"Bearer {mint_token(SETTINGS, uuid4(), all_scope=True)}"}


@pytest.fixture
def app() -> FastAPI:
    return create_app(SETTINGS)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://api", headers=TOKEN) as client,
    ):
        yield client


def _list_url() -> str:
    return f"{PREFIX}/agents/{uuid4()}/executions"


def _problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert {"type", "title", "detail"} <= body.keys(), body
    return body


def _assert_names(body: dict[str, Any], where: str, name: str) -> None:
    named = [(error["in"], error["name"]) for error in body["errors"]]
    assert (where, name) in named, f"expected an error at {where}.{name}, got {body}"
    assert f"invalid {where} parameter {name}:" in body["detail"], body["detail"]


def test_create_app_connects_to_nothing_before_startup(app: FastAPI) -> None:
    assert not hasattr(app.state, "engine")


async def test_startup_warns_loudly_about_the_development_secret(
    app: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="api.app"):
        async with app.router.lifespan_context(app):
            pass
    assert any(
        "INSECURE" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records
    )


async def test_startup_is_quiet_with_a_secret_of_its_own(caplog: pytest.LogCaptureFixture) -> None:
    secret = ApiSettings(database_url=UNREACHABLE, jwt_secret="s" * 32)
    app = create_app(secret)
    with caplog.at_level(logging.WARNING, logger="api.app"):
        async with app.router.lifespan_context(app):
            pass
    assert not [r for r in caplog.records if r.name == "api.app"]


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        ApiSettings(jwt_secret="short")


async def test_healthz_is_ok_without_a_database_or_a_token(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz", headers={"Authorization": ""})
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_only_the_services_own_instrumentation_traces_requests(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A real tracer provider as the global one, as configure_tracing sets it in a worker.
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: provider)

    async def healthz(app: FastAPI) -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            assert (await client.get("/healthz")).status_code == 200

    # FastAPI's own telemetry finds that provider (a bare app traces the request itself) ...
    bare = FastAPI()
    bare.get("/healthz")(lambda: {"status": "ok"})
    await healthz(bare)
    assert SpanKind.SERVER in [s.kind for s in exporter.get_finished_spans()]
    exporter.clear()
    # ... but the service's app leaves that to server/bootstrap.py's instrumentation.
    await healthz(create_app(SETTINGS))
    assert exporter.get_finished_spans() == ()


async def test_readyz_is_a_503_problem_when_the_database_is_unreachable(
    client: httpx.AsyncClient,
) -> None:
    body = _problem(await client.get("/readyz", headers={"Authorization": ""}), 503)
    assert body["detail"].startswith("database unreachable")


async def test_history_is_a_503_problem_when_the_database_is_unreachable(
    client: httpx.AsyncClient,
) -> None:
    body = _problem(await client.get(_list_url()), 503)
    assert body["type"] == "urn:agent-history:problem:database-unavailable"
    assert "nobody" not in body["detail"], "no connection details in responses"


async def test_history_needs_a_token_before_it_needs_the_database(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get(_list_url(), headers={"Authorization": ""})
    _problem(response, 401)
    assert response.headers["www-authenticate"] == 'Bearer realm="agent-history"'


async def test_unknown_route_is_a_404_problem(client: httpx.AsyncClient) -> None:
    body = _problem(await client.get("/api/v1/agent-studio/nothing"), 404)
    assert (body["type"], body["title"]) == ("about:blank", "Not Found")
    assert body["instance"] == "/api/v1/agent-studio/nothing"


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
async def test_wrong_method_is_a_405_problem_with_allow(
    client: httpx.AsyncClient, method: str
) -> None:
    response = await client.request(method, _list_url())
    body = _problem(response, 405)
    assert response.headers["allow"] == "GET"
    assert body["title"] == "Method Not Allowed"


async def test_unexpected_error_is_a_generic_500_problem_and_logged(
    app: FastAPI, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    async def explode() -> None:
        raise RuntimeError("secret internals: SELECT * FROM agent_executions")

    app.add_api_route("/explode", explode)
    with caplog.at_level(logging.ERROR, logger="api.problems"):
        response = await client.get("/explode")

    body = _problem(response, 500)
    assert "secret internals" not in response.text
    assert body["detail"] == "an unexpected error occurred; it has been logged"
    assert any(record.exc_info for record in caplog.records), "the error should be logged"


@pytest.mark.parametrize(
    ("url", "name"),
    [
        (f"{PREFIX}/agents/not-a-uuid/executions", "agent_id"),
        (f"{PREFIX}/users/not-a-uuid/executions", "user_id"),
        (f"{PREFIX}/executions/not-a-uuid", "execution_id"),
        (f"{PREFIX}/agents/not-a-uuid/executions/stats", "agent_id"),
    ],
)
async def test_invalid_uuid_is_422_naming_the_path_parameter(
    client: httpx.AsyncClient, url: str, name: str
) -> None:
    body = _problem(await client.get(url), 422)
    assert body["type"] == "urn:agent-history:problem:invalid-parameters"
    _assert_names(body, "path", name)


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
        ({"user_id": "ada"}, "user_id"),
        ({"order": "newest"}, "order"),
        ({"include": "secrets"}, "include"),
        ({"started_after": "2025-01-15T10:30:00"}, "started_after"),
        ({"started_before": "soon"}, "started_before"),
    ],
)
async def test_invalid_query_parameter_is_422_naming_it(
    client: httpx.AsyncClient, params: dict[str, Any], name: str
) -> None:
    _assert_names(_problem(await client.get(_list_url(), params=params), 422), "query", name)


async def test_every_invalid_parameter_is_named(client: httpx.AsyncClient) -> None:
    params: dict[str, Any] = {"limit": 0, "offset": -1, "status": "x", "include": "y"}
    body = _problem(await client.get(_list_url(), params=params), 422)
    for name in ("limit", "offset", "status", "include"):
        _assert_names(body, "query", name)
    assert all(set(error) == {"in", "name", "reason"} for error in body["errors"])


@pytest.mark.parametrize(
    "url",
    [_list_url(), f"{PREFIX}/executions/{uuid4()}", f"{PREFIX}/agents/{uuid4()}/executions/stats"],
)
async def test_an_unknown_query_parameter_is_a_422_naming_it(
    client: httpx.AsyncClient, url: str
) -> None:
    # A misspelt filter ignored would silently widen the result.
    body = _problem(await client.get(url, params={"stauts": "failed"}), 422)
    _assert_names(body, "query", "stauts")


async def test_a_caller_without_a_token_learns_nothing_about_parameters(
    client: httpx.AsyncClient,
) -> None:
    params: dict[str, Any] = {"limit": 0, "stauts": "failed"}
    response = await client.get(_list_url(), params=params, headers={"Authorization": ""})
    _problem(response, 401)
