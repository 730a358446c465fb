"""One-time login codes against the real database: a code is traded once, whichever API process
(each app here has its own engine, as each worker process does) gets it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from agent_history.api.app import create_app
from agent_history.api.auth import TokenVerifier
from agent_history.api.login import mint_login_code, spend_in
from agent_history.api.settings import ApiSettings
from agent_history.read_model.tables import redeemed_login_codes
from tests.integration.test_erasure_api import client_of

pytestmark = pytest.mark.integration

LOGIN = "/api/v1/agent-studio/login"


async def test_a_code_is_traded_once_across_api_processes(api_settings: ApiSettings) -> None:
    user = uuid4()
    code = mint_login_code(api_settings, user, all_scope=True)
    first, second = create_app(api_settings), create_app(api_settings)
    async with client_of(first, "") as one, client_of(second, "") as other:
        traded = await one.post(LOGIN, json={"code": code})
        assert traded.status_code == 200, traded.text
        caller = TokenVerifier(api_settings).verify(traded.json()["access_token"])
        assert (caller.user_id, caller.reads_all) == (user, True)
        for client in (other, one):
            again = await client.post(LOGIN, json={"code": code})
            assert again.status_code == 400, again.text
            assert again.headers["content-type"] == "application/problem+json"
            assert again.json()["type"] == "urn:agent-history:problem:invalid-login-code"
            assert "used already" in again.json()["detail"]
            assert "access_token" not in again.text


async def test_expired_codes_leave_the_ledger(db_engine: AsyncEngine) -> None:
    spend = spend_in(db_engine)
    now = datetime.now(UTC)
    old, fresh = f"old-{uuid4().hex}", f"fresh-{uuid4().hex}"
    assert await spend(old, now - timedelta(seconds=1))
    assert await spend(fresh, now + timedelta(minutes=5))
    assert not await spend(fresh, now + timedelta(minutes=5))

    async with db_engine.connect() as conn:
        left = await conn.scalar(
            select(func.count())
            .select_from(redeemed_login_codes)
            .where(redeemed_login_codes.c.jti.in_([old, fresh]))
        )
    assert left == 1, "the expired code's row was not deleted by the next redemption"
