"""One-time login codes and the page's own responses, without a database (the codes' ledger in
the database: tests/integration/test_login_codes.py)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from uuid import uuid4

import httpx
import jwt
import pytest

from agent_history.api.app import create_app
from agent_history.api.auth import TokenVerifier
from agent_history.api.login import (
    CODE_TTL,
    LoginCodes,
    LoginRefused,
    LoginUnavailable,
    _key,
    login_url,
    mint_login_code,
)
from agent_history.api.problems import ProblemError
from agent_history.api.settings import ApiSettings

SETTINGS = ApiSettings(database_url="postgresql+asyncpg://nobody:nothing@127.0.0.1:1/nowhere")
PREFIX = "/api/v1/agent-studio"


def in_memory(settings: ApiSettings = SETTINGS) -> LoginCodes:
    spent: set[str] = set()

    async def spend(jti: str, expires_at: datetime) -> bool:
        assert expires_at.tzinfo is not None
        first = jti not in spent
        spent.add(jti)
        return first

    return LoginCodes(settings, spend)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(SETTINGS)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as c:
        yield c


async def test_a_code_is_traded_once_for_a_token_with_its_scopes() -> None:
    user = uuid4()
    codes = in_memory()
    code = mint_login_code(SETTINGS, user, all_scope=True, session=timedelta(hours=2))
    token = await codes.redeem(code)
    caller = TokenVerifier(SETTINGS).verify(token.access_token)
    assert (caller.user_id, caller.reads_all, caller.erases) == (user, True, False)
    assert token.expires_in == 7200
    with pytest.raises(LoginRefused, match="used already"):
        await codes.redeem(code)


async def test_a_code_expires_and_is_never_a_bearer_token() -> None:
    code = mint_login_code(SETTINGS, uuid4())
    with pytest.raises(ProblemError, match="signature"):
        TokenVerifier(SETTINGS).verify(code)
    with pytest.raises(LoginRefused, match="not a login link"):
        await in_memory().redeem(code[:-4] + "AAAA")
    claims = jwt.decode(code, options={"verify_signature": False})
    assert claims["exp"] - time.time() <= CODE_TTL.total_seconds()
    stale = jwt.encode({**claims, "exp": int(time.time()) - 1}, _key(SETTINGS), "HS256")
    with pytest.raises(LoginRefused, match="expired"):
        await in_memory().redeem(stale)


async def test_rs256_deployments_have_no_login_links() -> None:
    rs256 = SETTINGS.model_copy(update={"jwt_public_key": "-----BEGIN PUBLIC KEY-----"})
    with pytest.raises(LoginUnavailable):
        mint_login_code(rs256, uuid4())
    with pytest.raises(LoginUnavailable):
        await in_memory(rs256).redeem("x")


def test_the_link_carries_the_code_in_its_fragment() -> None:
    assert login_url("http://h:1/", "abc", "/ui/agents/x") == "http://h:1/ui/agents/x#code=abc"


async def test_the_page_is_served_for_every_path_under_ui_with_a_strict_policy(
    client: httpx.AsyncClient,
) -> None:
    for path in ("/ui/", "/ui/agents/6f1c2a4e-8d3b-4f5a-9c7e-1b2d3e4f5a6b", "/ui/executions/x"):
        response = await client.get(path)
        assert response.status_code == 200, path
        assert '<script type="module" src="/ui/assets/js/main.js">' in response.text
        assert "script-src 'self'" in response.headers["content-security-policy"]
        assert response.headers["referrer-policy"] == "no-referrer"
    script = await client.get("/ui/assets/js/main.js")
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
    assert "etag" in script.headers
    assert (await client.get("/ui/assets/js/nothing.js")).status_code == 404
