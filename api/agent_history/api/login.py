"""One-time login links for the page: a short-lived code that is traded once for a bearer token.

`agent-history token --login-url` (and the demo) print ``<base>/ui/#code=<code>``. The code sits
in the URL's fragment, which browsers never send to a server, so it reaches no access log and no
Referer; the page POSTs it to ``/login`` and keeps the token it gets back. A printed link that
ends up in a terminal's scroll-back or a CI log is worth nothing after its first use or after
``CODE_TTL``, whichever comes first.

A code is a JWT signed with a key derived from ``jwt_secret`` (never the key of bearer tokens, so
a code is not itself a token anywhere). It is single-use across every API process: its id goes
into ``redeemed_login_codes`` when it is traded (``spend_in``), and a code whose id is there
already is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TypeAlias
from uuid import UUID

import jwt
from pydantic import BaseModel, Field
from sqlalchemy import delete, text
from sqlalchemy.dialects.postgresql import insert as upsert
from sqlalchemy.ext.asyncio import AsyncEngine

from agent_history.api.auth import ALL_SCOPE, ERASE_SCOPE, mint_token
from agent_history.api.settings import ApiSettings
from agent_history.read_model.tables import redeemed_login_codes

CODE_TTL = timedelta(minutes=5)
SESSION_TTL = timedelta(hours=8)
_ALGORITHM = "HS256"


class LoginRefused(Exception):
    """A code that cannot be traded for a token; the message says why, for the caller."""


class LoginUnavailable(ValueError):
    """This deployment cannot mint tokens (RS256: the private key is the identity provider's)."""


class LoginRequest(BaseModel):
    code: str = Field(min_length=1, max_length=4096, description="The code of a login link.")


class LoginToken(BaseModel):
    access_token: str
    token_type: str = "Bearer"
    expires_in: int = Field(description="Seconds until the token expires.")


def _key(settings: ApiSettings) -> bytes:
    secret = settings.jwt_secret.get_secret_value().encode()
    return hmac.new(secret, b"agent-history login codes", hashlib.sha256).digest()


def mint_login_code(
    settings: ApiSettings,
    user_id: UUID,
    *,
    all_scope: bool = False,
    erase_scope: bool = False,
    session: timedelta = SESSION_TTL,
) -> str:
    """A one-time code for ``user_id`` that ``LoginCodes.redeem`` trades for a token with these
    scopes, valid for ``session``."""
    if settings.jwt_public_key is not None:
        raise LoginUnavailable("the API expects RS256 tokens: sign in with one from its issuer")
    now = int(time.time())
    scopes = [s for s, wanted in ((ALL_SCOPE, all_scope), (ERASE_SCOPE, erase_scope)) if wanted]
    claims = {
        "sub": str(user_id),
        "scope": " ".join(scopes),
        "session": int(session.total_seconds()),
        "jti": uuid.uuid4().hex,
        "exp": now + int(CODE_TTL.total_seconds()),
    }
    return jwt.encode(claims, _key(settings), algorithm=_ALGORITHM)


def login_url(base_url: str, code: str, path: str = "/ui/") -> str:
    """The page's address (``path`` under it) with the code in its fragment."""
    return f"{base_url.rstrip('/')}{path}#code={code}"


# Records a code's id (jti) as used until the code expires: True the first time, False after.
Spend: TypeAlias = Callable[[str, datetime], Awaitable[bool]]


def spend_in(engine: AsyncEngine) -> Spend:
    """``Spend`` in the read model's ``redeemed_login_codes``, shared by every API process."""

    async def spend(jti: str, expires_at: datetime) -> bool:
        async with engine.connect() as conn:
            # The API's sessions are read only and autocommit: one short transaction that may
            # write, for this table alone.
            conn = await conn.execution_options(isolation_level="READ COMMITTED")
            async with conn.begin():
                await conn.execute(text("SET TRANSACTION READ WRITE"))
                table = redeemed_login_codes
                await conn.execute(delete(table).where(table.c.expires_at < datetime.now(UTC)))
                added = await conn.execute(
                    upsert(table)
                    .values(jti=jti, expires_at=expires_at)
                    .on_conflict_do_nothing()
                    .returning(table.c.jti)
                )
                return added.first() is not None

    return spend


class LoginCodes:
    """Redeems login codes, each once (``spend`` remembers them); built once per app."""

    def __init__(self, settings: ApiSettings, spend: Spend) -> None:
        self._settings = settings
        self._spend = spend

    async def redeem(self, code: str) -> LoginToken:
        if self._settings.jwt_public_key is not None:
            raise LoginUnavailable("the API expects RS256 tokens: sign in with one from its issuer")
        try:
            claims = jwt.decode(
                code,
                _key(self._settings),
                algorithms=[_ALGORITHM],
                options={"require": ["exp", "sub", "jti", "session"]},
            )
        except jwt.ExpiredSignatureError:
            raise LoginRefused("the login link has expired: ask for a new one") from None
        except jwt.InvalidTokenError:
            raise LoginRefused("this is not a login link's code") from None
        if not await self._spend(str(claims["jti"]), datetime.fromtimestamp(claims["exp"], UTC)):
            raise LoginRefused("the login link was used already: ask for a new one")
        scopes = str(claims.get("scope", "")).split()
        session = timedelta(seconds=int(claims["session"]))
        token = mint_token(
            self._settings,
            UUID(claims["sub"]),
            all_scope=ALL_SCOPE in scopes,
            erase_scope=ERASE_SCOPE in scopes,
            ttl=session,
        )
        return LoginToken(access_token=token, expires_in=int(session.total_seconds()))
