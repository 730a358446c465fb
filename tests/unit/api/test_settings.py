"""The API's settings: outside development, the public development secret is refused."""

from __future__ import annotations

import logging

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from agent_history.api.app import create_app
from agent_history.api.settings import DEVELOPMENT_JWT_SECRET, ApiSettings

UNREACHABLE = "postgresql+asyncpg://nobody:nothing@127.0.0.1:1/nowhere"


def _public_key() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem.decode()


def test_development_is_the_default_and_allows_the_development_secret() -> None:
    settings = ApiSettings()
    assert settings.env == "development"
    assert settings.uses_development_secret


def test_production_refuses_the_development_secret_naming_what_to_set() -> None:
    for given in ({}, {"jwt_secret": DEVELOPMENT_JWT_SECRET}):
        with pytest.raises(ValueError, match="set AGENT_HISTORY_JWT_SECRET to a secret of your"):
            ApiSettings.model_validate({"env": "production", **given})


def test_production_with_a_public_key_still_needs_a_cursor_secret() -> None:
    # Without one, cursors would be signed with a key derived from the development secret.
    with pytest.raises(ValueError, match="set AGENT_HISTORY_CURSOR_SECRET"):
        ApiSettings(env="production", jwt_public_key=_public_key())
    ApiSettings(env="production", jwt_public_key=_public_key(), cursor_secret="c" * 32)


async def test_production_starts_quietly_with_a_secret_of_its_own(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = ApiSettings(env="production", jwt_secret="s" * 32, database_url=UNREACHABLE)
    app = create_app(settings)
    with caplog.at_level(logging.WARNING):
        async with app.router.lifespan_context(app):
            pass
    assert not [record for record in caplog.records if "INSECURE" in record.getMessage()]


def test_an_unknown_environment_is_refused() -> None:
    with pytest.raises(ValueError, match="env"):
        ApiSettings(env="staging")
