"""Erasing a user through the API (DELETE /users/{id}/executions) and the command line, against
the real database: who may, what it answers, and what is left."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from uuid import UUID, uuid4

import httpx
import jwt
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner

from agent_history.api.app import create_app
from agent_history.api.auth import ERASE_SCOPE, mint_token
from agent_history.api.settings import ApiSettings
from agent_history.server.bootstrap import build_api
from agent_history.server.cli import app as cli
from tests.integration.history_api_support import (
    add_execution,
    assert_problem,
    get_ok,
    ids,
    new_agent,
    new_user,
    user_list,
)

pytestmark = pytest.mark.integration


@asynccontextmanager
async def client_of(app: object, token: str) -> AsyncIterator[httpx.AsyncClient]:
    assert hasattr(app, "router")
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),  # type: ignore[arg-type]
            base_url="http://api",
            headers={"Authorization": f"Bearer {token}"},
        ) as client,
    ):
        yield client


async def _ada_and_grace(engine: AsyncEngine) -> tuple[UUID, UUID, UUID]:
    """(ada, grace, grace's execution): three runs of Ada's (two statuses), one of Grace's."""
    agent, ada = await new_agent(engine)
    grace = await new_user(engine, "Grace")
    for status in ("running", "running", "completed"):
        await add_execution(engine, agent, ada, status=status)
    return ada, grace, await add_execution(engine, agent, grace)


async def test_only_a_token_with_the_erase_scope_may_erase(
    db_engine: AsyncEngine, api_settings: ApiSettings
) -> None:
    ada, _, _ = await _ada_and_grace(db_engine)
    admin = uuid4()
    app = build_api(api_settings)

    for token in (
        mint_token(api_settings, admin),
        mint_token(api_settings, admin, all_scope=True),
        mint_token(api_settings, ada),  # not even her own
    ):
        async with client_of(app, token) as client:
            refused = await client.delete(user_list(ada))
        body = assert_problem(refused, 403)
        assert body["type"] == "urn:agent-history:problem:insufficient-scope"
        assert ERASE_SCOPE in body["detail"]
        assert 'error="insufficient_scope"' in refused.headers["www-authenticate"]

    async with client_of(app, mint_token(api_settings, admin, all_scope=True)) as reader:
        assert len(ids(await get_ok(reader, user_list(ada)))) == 3, "nothing was erased"
    async with client_of(app, "not a token") as client:
        assert_problem(await client.delete(user_list(ada)), 401)


async def test_erasing_answers_what_it_removed_and_leaves_everyone_else(
    db_engine: AsyncEngine, api_settings: ApiSettings
) -> None:
    ada, grace, graces = await _ada_and_grace(db_engine)
    admin = uuid4()
    app = build_api(api_settings)
    token = mint_token(api_settings, admin, all_scope=True, erase_scope=True)

    async with client_of(app, token) as client:
        first = await client.delete(user_list(ada))
        again = await client.delete(user_list(ada))
        adas = await get_ok(client, user_list(ada))
        graces_list = await get_ok(client, user_list(grace))
        invalid = await client.delete(user_list("not-a-uuid"))  # type: ignore[arg-type]

    assert first.status_code == 200, first.text
    body = first.json()
    assert body["user_id"] == str(ada)
    assert (body["first"], body["executions"], body["names"], body["status_counts"]) == (
        True,
        3,
        1,
        2,
    )
    assert (body["executions_removed"], body["dropped_events"]) == (3, 0)
    repeated = again.json()
    assert (repeated["first"], repeated["executions"], repeated["names"]) == (False, 0, 0)
    assert repeated["erased_at"] == body["erased_at"]
    assert (adas["total"], adas["executions"]) == (0, [])
    assert ids(graces_list) == [graces]
    assert_problem(invalid, 422)


async def test_erasing_a_user_with_no_runs_records_the_erasure(
    db_engine: AsyncEngine, api_settings: ApiSettings
) -> None:
    nobody = uuid4()
    app = build_api(api_settings)
    async with client_of(app, mint_token(api_settings, uuid4(), erase_scope=True)) as client:
        response = await client.delete(user_list(nobody))

    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["first"], body["executions"], body["names"], body["status_counts"]) == (
        True,
        0,
        0,
        0,
    )


async def test_an_app_built_without_an_eraser_answers_501(api_settings: ApiSettings) -> None:
    app = create_app(api_settings)
    async with client_of(app, mint_token(api_settings, uuid4(), erase_scope=True)) as client:
        assert_problem(await client.delete(user_list(uuid4())), 501)


async def test_the_command_erases_and_says_what_it_removed(
    db_engine: AsyncEngine, api_settings: ApiSettings
) -> None:
    ada, _, _ = await _ada_and_grace(db_engine)
    env = {"AGENT_HISTORY_DATABASE_URL": api_settings.database_url}
    runner = CliRunner()

    first = await asyncio.to_thread(runner.invoke, cli, ["erase", "--user", str(ada)], env=env)
    again = await asyncio.to_thread(runner.invoke, cli, ["erase", "--user", str(ada)], env=env)
    wrong = await asyncio.to_thread(runner.invoke, cli, ["erase", "--user", "ada"], env=env)

    assert first.exit_code == 0, first.output
    assert first.output.startswith(
        f"erased user {ada}: deleted 3 executions, 1 name and 2 status counts; "
        "3 executions removed and 0 later events dropped in all\n"
    ), first.output
    assert "stay in the Kafka topic until its retention removes them" in first.output
    assert again.exit_code == 0, again.output
    assert f"erased user {ada} (already erased at " in again.output
    assert "deleted 0 executions, 0 name and 0 status counts" in again.output
    assert wrong.exit_code == 2
    assert "must be a UUID" in wrong.output


def test_the_token_command_mints_the_erase_scope_when_asked() -> None:
    runner = CliRunner()
    user = str(uuid4())
    plain = runner.invoke(cli, ["token", "--user", user])
    both = runner.invoke(cli, ["token", "--user", user, "--all", "--erase"])

    def scope(minted: str) -> str | None:
        claims = jwt.decode(minted.strip(), options={"verify_signature": False})
        return claims.get("scope")

    assert scope(plain.output) is None
    assert scope(both.output) == f"executions:read:all {ERASE_SCOPE}"
