"""Token verification and minting, and what a caller may read."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import jwt
import pytest

from agent_history.api.auth import ALL_SCOPE, ERASE_SCOPE, Caller, TokenVerifier, mint_token
from agent_history.api.problems import ProblemError
from agent_history.api.settings import ApiSettings

SETTINGS = ApiSettings(jwt_secret="t" * 32)
VERIFIER = TokenVerifier(SETTINGS)


def _refused(token: str) -> str:
    with pytest.raises(ProblemError) as caught:
        VERIFIER.verify(token)
    assert caught.value.problem.status == 401
    challenge = caught.value.headers["WWW-Authenticate"]
    assert 'error="invalid_token"' in challenge
    return caught.value.problem.detail


def test_a_minted_token_names_its_user() -> None:
    user = uuid4()
    assert VERIFIER.verify(mint_token(SETTINGS, user)) == Caller(user, reads_all=False)
    assert VERIFIER.verify(mint_token(SETTINGS, user, all_scope=True)) == Caller(user, True)


def test_a_minted_token_expires_after_its_ttl() -> None:
    token = mint_token(SETTINGS, uuid4(), ttl=timedelta(minutes=5))
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 300
    assert "scope" not in claims
    assert "expired" in _refused(mint_token(SETTINGS, uuid4(), ttl=timedelta(seconds=-1)))


class CountingDecoder(jwt.PyJWT):
    """PyJWT's own decoder, counting the tokens whose signature it checks."""

    def __init__(self) -> None:
        super().__init__()
        self.decoded: list[str | bytes] = []

    def decode(self, jwt: str | bytes, *args: Any, **kwargs: Any) -> dict[str, Any]:
        self.decoded.append(jwt)
        return super().decode(jwt, *args, **kwargs)


def test_a_verified_token_is_remembered_until_it_expires() -> None:
    """The signature is checked once per token, but a remembered token never outlives exp."""
    now = [time.time()]
    decoder = CountingDecoder()
    verifier = TokenVerifier(SETTINGS, clock=lambda: now[0], decoder=decoder)
    user = uuid4()
    exp = int(time.time()) + 60
    secret = SETTINGS.jwt_secret.get_secret_value()
    token = jwt.encode({"sub": str(user), "exp": exp}, secret, algorithm="HS256")

    assert verifier.verify(token) == verifier.verify(token) == Caller(user, reads_all=False)
    assert len(decoder.decoded) == 1

    # Past exp by the cache's clock: the token is checked again, and PyJWT's clock (which a
    # test cannot move) still accepts it, so it is decoded a second time, not served as before.
    now[0] = exp + 1.0
    assert verifier.verify(token) == Caller(user, reads_all=False)
    assert len(decoder.decoded) == 2


def test_an_expired_token_is_refused_even_after_it_verified() -> None:
    verifier = TokenVerifier(SETTINGS)
    exp = int(time.time()) + 1
    secret = SETTINGS.jwt_secret.get_secret_value()
    token = jwt.encode({"sub": str(uuid4()), "exp": exp}, secret, algorithm="HS256")
    verifier.verify(token)
    time.sleep(exp + 1.05 - time.time())
    with pytest.raises(ProblemError) as refused:
        verifier.verify(token)
    assert "expired" in refused.value.problem.detail


def test_the_scope_is_space_separated() -> None:
    user = uuid4()
    exp = datetime.now(UTC) + timedelta(minutes=1)
    secret = SETTINGS.jwt_secret.get_secret_value()
    for scope, reads_all in [
        (f"profile {ALL_SCOPE} email", True),
        ("executions:read", False),
        (f"{ALL_SCOPE}:extra", False),
        ("", False),
    ]:
        token = jwt.encode({"sub": str(user), "exp": exp, "scope": scope}, secret)
        assert VERIFIER.verify(token).reads_all is reads_all, scope


def test_the_erase_scope_is_its_own() -> None:
    user = uuid4()
    erases = VERIFIER.verify(mint_token(SETTINGS, user, erase_scope=True))
    both = VERIFIER.verify(mint_token(SETTINGS, user, all_scope=True, erase_scope=True))

    assert erases == Caller(user, reads_all=False, erases=True)
    assert both == Caller(user, reads_all=True, erases=True)
    assert not VERIFIER.verify(mint_token(SETTINGS, user, all_scope=True)).erases
    exp = datetime.now(UTC) + timedelta(minutes=1)
    secret = SETTINGS.jwt_secret.get_secret_value()
    token = jwt.encode({"sub": str(user), "exp": exp, "scope": f"{ERASE_SCOPE}:x"}, secret)
    assert not VERIFIER.verify(token).erases


def test_a_token_of_another_secret_is_refused() -> None:
    other = ApiSettings(jwt_secret="o" * 32)
    assert "signature" in _refused(mint_token(other, uuid4()))


def test_a_caller_without_the_scope_reads_only_their_own() -> None:
    own, other = uuid4(), uuid4()
    assert Caller(own, reads_all=False).owner == own
    assert Caller(own, reads_all=False).may_read(own)
    assert not Caller(own, reads_all=False).may_read(other)
    assert Caller(own, reads_all=True).owner is None
    assert Caller(own, reads_all=True).may_read(other)


def test_a_public_key_that_is_not_rsa_is_refused_at_start() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(ValueError, match="RSA"):
        TokenVerifier(ApiSettings(jwt_public_key=pem.decode()))


def test_audience_and_issuer_are_checked_only_when_configured() -> None:
    user, secret = uuid4(), SETTINGS.jwt_secret.get_secret_value()
    exp = datetime.now(UTC) + timedelta(minutes=1)

    def token(**claims: str) -> str:
        return jwt.encode({"sub": str(user), "exp": exp, **claims}, secret)

    # An identity provider's token names its audience; unconfigured, it is not checked.
    assert VERIFIER.verify(token(aud="someone", iss="anyone")).user_id == user
    strict = TokenVerifier(
        SETTINGS.model_copy(update={"jwt_audience": "agent-history", "jwt_issuer": "idp"})
    )
    assert strict.verify(token(aud="agent-history", iss="idp")).user_id == user
    for claims in ({"aud": "other", "iss": "idp"}, {"iss": "idp"}, {"aud": "agent-history"}):
        with pytest.raises(ProblemError):
            strict.verify(token(**claims))
