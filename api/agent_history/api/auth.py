"""Bearer-token authentication (RFC 6750) with JWTs, and what a caller may read.

Tokens are HS256 with ``jwt_secret``, or RS256 when ``jwt_public_key`` is configured (then
HS256 tokens are refused, so the public key can never be used as an HMAC secret). Claims:
``sub`` is the user id, ``exp`` is required, ``scope`` is space-separated; ``executions:read:all``
lifts the restriction to the caller's own executions, ``executions:erase`` allows erasing a user.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import jwt
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from agent_history.api.problems import INSUFFICIENT_SCOPE, UNAUTHENTICATED, ProblemError
from agent_history.api.settings import ApiSettings

ALL_SCOPE = "executions:read:all"
ERASE_SCOPE = "executions:erase"
REALM = "agent-history"
DEFAULT_TTL = timedelta(hours=1)
# How many verified tokens a process remembers until they expire; beyond, it starts afresh.
_VERIFIED_TOKENS = 10_000


@dataclass(frozen=True)
class Caller:
    """Who is asking, whether they may read every user's executions, and erase a user's."""

    user_id: UUID
    reads_all: bool
    erases: bool = False

    @property
    def owner(self) -> UUID | None:
        """The only user whose executions this caller sees; None when it sees all."""
        return None if self.reads_all else self.user_id

    def may_read(self, user_id: UUID) -> bool:
        return self.reads_all or user_id == self.user_id


class TokenVerifier:
    """Checks bearer tokens against the configured key; built once by create_app.

    ``clock`` (seconds since the epoch) says when a remembered token has expired, and
    ``decoder`` checks a token's signature and claims; tests pass their own.
    """

    def __init__(
        self,
        settings: ApiSettings,
        *,
        clock: Callable[[], float] = time.time,
        decoder: jwt.PyJWT | None = None,
    ) -> None:
        self._key: Any
        if settings.jwt_public_key is not None:
            # Parsed now, so a bad key fails at start-up rather than on every request.
            key = load_pem_public_key(settings.jwt_public_key.encode())
            if not isinstance(key, RSAPublicKey):
                raise ValueError("jwt_public_key must be an RSA public key (RS256)")
            self._key = key
            self._algorithm = "RS256"
        else:
            self._key = settings.jwt_secret.get_secret_value()
            self._algorithm = "HS256"
        self._audience = settings.jwt_audience
        self._issuer = settings.jwt_issuer
        # Tokens that verified, with their expiry: a client sends the same token with each
        # request, and checking its signature again would be most of the cost of authenticating.
        self._verified: dict[str, tuple[Caller, float]] = {}
        self._clock = clock
        self._decoder = decoder or jwt.PyJWT()

    def verify(self, token: str) -> Caller:
        """The caller a token names; a 401 problem for any token that is not valid."""
        known = self._verified.get(token)
        if known is not None and self._clock() < known[1]:
            return known[0]
        caller, expires = self._check(token)
        if len(self._verified) >= _VERIFIED_TOKENS:
            self._verified.clear()
        self._verified[token] = (caller, expires)
        return caller

    def _check(self, token: str) -> tuple[Caller, float]:
        try:
            claims = self._decoder.decode(
                token,
                self._key,
                algorithms=[self._algorithm],
                audience=self._audience,
                issuer=self._issuer,
                options={"require": ["exp", "sub"], "verify_aud": self._audience is not None},
            )
        except jwt.ExpiredSignatureError:
            raise _invalid_token("the token has expired") from None
        except jwt.InvalidSignatureError:
            raise _invalid_token("the token's signature does not verify") from None
        except jwt.InvalidAlgorithmError:
            raise _invalid_token(f"the token is not signed with {self._algorithm}") from None
        except jwt.MissingRequiredClaimError as error:
            raise _invalid_token(f"the token has no {error.claim} claim") from None
        except jwt.DecodeError:
            raise _invalid_token("the token is not a well-formed JWT") from None
        except jwt.InvalidTokenError:
            raise _invalid_token("the token is not valid") from None
        try:
            user_id = UUID(claims["sub"])
        except (TypeError, ValueError):
            raise _invalid_token("the token's sub claim is not a user id (UUID)") from None
        scope = claims.get("scope", "")
        if not isinstance(scope, str):
            raise _invalid_token("the token's scope claim is not a string")
        scopes = scope.split()
        caller = Caller(user_id, reads_all=ALL_SCOPE in scopes, erases=ERASE_SCOPE in scopes)
        return caller, float(claims["exp"])


def mint_token(
    settings: ApiSettings,
    user_id: UUID,
    *,
    all_scope: bool = False,
    erase_scope: bool = False,
    ttl: timedelta = DEFAULT_TTL,
) -> str:
    """An HS256 token for ``user_id`` signed with ``settings.jwt_secret``, valid for ``ttl``,
    with the scopes asked for.

    For local use (tests, the demo, `agent-history token`); an RS256 deployment gets its
    tokens from the identity provider that holds the private key.
    """
    if settings.jwt_public_key is not None:
        raise ValueError("the API expects RS256 tokens: mint them with the private key's holder")
    now = datetime.now(UTC)
    claims: dict[str, Any] = {"sub": str(user_id), "iat": now, "exp": now + ttl}
    scopes = [s for s, wanted in ((ALL_SCOPE, all_scope), (ERASE_SCOPE, erase_scope)) if wanted]
    if scopes:
        claims["scope"] = " ".join(scopes)
    return jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm="HS256")


def missing_token() -> ProblemError:
    """The 401 for a request without a bearer token."""
    return ProblemError(
        401,
        "this endpoint needs an Authorization: Bearer <JWT> header",
        kind=UNAUTHENTICATED,
        title="Authentication required",
        headers={"WWW-Authenticate": f'Bearer realm="{REALM}"'},
    )


def missing_scope(scope: str, action: str) -> ProblemError:
    """The 403 for a valid token without the scope an action needs (RFC 6750 3.1)."""
    challenge = f'Bearer realm="{REALM}", error="insufficient_scope", scope="{scope}"'
    return ProblemError(
        403,
        f"{action} needs a token with the scope {scope}",
        kind=INSUFFICIENT_SCOPE,
        title="Insufficient scope",
        headers={"WWW-Authenticate": challenge},
    )


def _invalid_token(description: str) -> ProblemError:
    challenge = f'Bearer realm="{REALM}", error="invalid_token", error_description="{description}"'
    return ProblemError(
        401,
        description,
        kind=UNAUTHENTICATED,
        title="Invalid token",
        headers={"WWW-Authenticate": challenge},
    )
