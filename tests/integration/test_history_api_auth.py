"""Who may read what: the authorization matrix on every endpoint, against the real database."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy.ext.asyncio import AsyncEngine

from agent_history.api.auth import ALL_SCOPE, mint_token
from agent_history.api.settings import ApiSettings
from tests.integration.history_api_support import (
    PREFIX,
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
)

pytestmark = pytest.mark.integration


async def _two_users(engine: AsyncEngine) -> tuple[UUID, UUID, UUID, UUID, UUID]:
    """(agent, ada, grace, ada's execution, grace's execution)."""
    agent_id, ada = await new_agent(engine)
    grace = await new_user(engine, "Grace")
    return (
        agent_id,
        ada,
        grace,
        await add_execution(engine, agent_id, ada),
        await add_execution(engine, agent_id, grace),
    )


async def test_a_user_sees_only_their_own_executions(
    db_engine: AsyncEngine, api_settings: ApiSettings
) -> None:
    agent_id, ada, grace, adas, graces = await _two_users(db_engine)

    async with api_client(api_settings, bearer(api_settings, ada)) as client:
        listed = await get_ok(client, agent_list(agent_id))
        asking_for_grace = await get_ok(client, agent_list(agent_id), user_id=str(grace))
        own = await client.get(f"{PREFIX}/executions/{adas}")
        others = await client.get(f"{PREFIX}/executions/{graces}")
        unknown = await client.get(f"{PREFIX}/executions/{uuid4()}")
        own_list = await get_ok(client, user_list(ada))
        others_list = await client.get(user_list(grace))

    assert (ids(listed), listed["total"]) == ([adas], 1)
    assert (asking_for_grace["executions"], asking_for_grace["total"]) == ([], 0)
    assert own.status_code == 200
    # Another user's execution is indistinguishable from one that does not exist.
    for hidden in (others, unknown):
        body = assert_problem(hidden, 404)
        assert set(body) == {"type", "title", "status", "detail", "instance"}
    assert assert_problem(others, 404)["title"] == assert_problem(unknown, 404)["title"]
    assert ids(own_list) == [adas]
    assert assert_problem(others_list, 404)["detail"] == f"user {grace} not found"


async def test_the_all_scope_sees_every_users_executions(
    db_engine: AsyncEngine, api_settings: ApiSettings
) -> None:
    agent_id, _, grace, adas, graces = await _two_users(db_engine)

    async with api_client(api_settings, bearer(api_settings, uuid4(), all_scope=True)) as client:
        listed = await get_ok(client, agent_list(agent_id))
        detail = await get_ok(client, f"{PREFIX}/executions/{graces}")
        graces_list = await get_ok(client, user_list(grace))
        stats = await get_ok(client, f"{PREFIX}/agents/{agent_id}/executions/stats")

    assert set(ids(listed)) == {adas, graces}
    assert detail["id"] == str(graces)
    assert ids(graces_list) == [graces]
    assert stats["total"] == 2


def _claims(**changes: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    claims = {"sub": str(uuid4()), "exp": now + timedelta(minutes=5), "scope": ALL_SCOPE}
    return {key: value for key, value in {**claims, **changes}.items() if value is not None}


def _bad_tokens(settings: ApiSettings) -> dict[str, str]:
    secret = settings.jwt_secret.get_secret_value()
    forged = jwt.encode(_claims(), "another-secret-that-is-long-enough-32b", algorithm="HS256")
    header = mint_token(settings, uuid4()).split(".")[0]
    _, other_payload, signature = mint_token(settings, uuid4(), all_scope=True).split(".")
    return {
        "expired": jwt.encode(_claims(exp=datetime.now(UTC) - timedelta(seconds=5)), secret),
        "forged": forged,
        "spliced": f"{header}.{other_payload}.{signature[::-1]}",
        "unsigned": jwt.encode(_claims(), "", algorithm="none"),
        "no exp": jwt.encode({"sub": str(uuid4())}, secret),
        "no sub": jwt.encode(_claims(sub=None), secret),
        "sub not a uuid": jwt.encode(_claims(sub="ada"), secret),
        "scope not a string": jwt.encode(_claims(scope=[ALL_SCOPE]), secret),
        "malformed": "not.a.jwt",
        "not even dots": "garbage",
    }


ENDPOINTS = [
    agent_list(uuid4()),
    user_list(uuid4()),
    f"{PREFIX}/executions/{uuid4()}",
    f"{PREFIX}/agents/{uuid4()}/executions/stats",
]


@pytest.mark.parametrize("url", ENDPOINTS)
async def test_invalid_tokens_are_401_with_an_invalid_token_challenge(
    api_settings: ApiSettings, url: str
) -> None:
    async with api_client(api_settings) as client:
        for name, token in _bad_tokens(api_settings).items():
            response = await client.get(url, headers={"Authorization": f"Bearer {token}"})
            body = assert_problem(response, 401)
            challenge = response.headers["www-authenticate"]
            assert challenge.startswith('Bearer realm="agent-history", error="invalid_token"'), (
                name,
                challenge,
            )
            assert body["detail"] in challenge, name


@pytest.mark.parametrize("url", ENDPOINTS)
@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Basic YWRhOnNlY3JldA=="}, {"Authorization": "Bearer"}],
    ids=["none", "basic", "empty bearer"],
)
async def test_no_bearer_token_is_a_401_with_a_bare_challenge(
    api_settings: ApiSettings, url: str, headers: dict[str, str]
) -> None:
    async with api_client(api_settings) as client:
        response = await client.get(url, headers=headers)
    assert_problem(response, 401)
    assert response.headers["www-authenticate"] == 'Bearer realm="agent-history"'


async def test_rs256_tokens_verify_with_the_configured_public_key(
    db_engine: AsyncEngine, api_settings: ApiSettings
) -> None:
    agent_id, ada = await new_agent(db_engine)
    adas = await add_execution(db_engine, agent_id, ada)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    settings = api_settings.model_copy(update={"jwt_public_key": public_pem.decode()})
    rs256 = jwt.encode(_claims(sub=str(ada), scope=None), key, algorithm="RS256")
    refused = {
        "hs256 with the secret": mint_token(api_settings, ada, all_scope=True),
        # Algorithm confusion: the public key, which anyone may have, as an HMAC secret.
        "hs256 with the public key": _hs256(_claims(), public_pem),
    }

    async with api_client(settings) as client:
        ok = await client.get(agent_list(agent_id), headers=_auth(rs256))
        answers = {
            name: await client.get(agent_list(agent_id), headers=_auth(token))
            for name, token in refused.items()
        }

    assert ok.status_code == 200, ok.text
    assert ids(ok.json()) == [adas]
    for name, response in answers.items():
        assert "RS256" in assert_problem(response, 401)["detail"], name
    with pytest.raises(ValueError, match="RS256"):
        mint_token(settings, ada)


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _hs256(claims: dict[str, Any], key: bytes) -> str:
    """An HS256 JWT made by hand: PyJWT itself refuses a PEM key as an HMAC secret."""

    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = json.dumps({"alg": "HS256", "typ": "JWT"}).encode()
    body = json.dumps({**claims, "exp": int(claims["exp"].timestamp())}).encode()
    signing_input = f"{part(header)}.{part(body)}"
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{part(signature)}"
