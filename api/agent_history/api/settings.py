"""The history API's settings."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator

from agent_history.contract.settings import LogSettings
from agent_history.read_model.db import DatabaseSettings

# Signs and verifies tokens when nothing else is configured: in development the API warns
# loudly when it is used; anywhere else it refuses to start.
DEVELOPMENT_JWT_SECRET = "agent-history-development-secret-never-use-in-production"


class ApiSettings(DatabaseSettings, LogSettings):
    env: Literal["development", "production"] = Field(
        default="development",
        description="Where the API runs: outside development it refuses the public "
        "development secret.",
    )
    host: str = "127.0.0.1"
    stream_max_seconds: float = Field(
        default=300.0,
        gt=0,
        description="A live stream ends after this long; its client resumes by Last-Event-ID "
        "(connections spread over the worker processes again).",
    )
    port: int = 8000
    workers: int = Field(
        default=1,
        ge=1,
        description="API processes sharing the port; each has a pool of database_pool_size.",
    )
    jwt_secret: SecretStr = Field(
        default=SecretStr(DEVELOPMENT_JWT_SECRET),
        description="HS256 key for bearer tokens (at least 32 bytes); unused when "
        "jwt_public_key is set.",
    )
    jwt_public_key: str | None = Field(
        default=None,
        description="PEM RSA public key: when set, tokens must be RS256 signed by its private key.",
    )
    jwt_audience: str | None = Field(
        default=None,
        description="When set, tokens must carry it in `aud`; else `aud` is unchecked.",
    )
    jwt_issuer: str | None = Field(
        default=None, description="When set, tokens must carry it as `iss`."
    )
    cursor_secret: SecretStr | None = Field(
        default=None,
        description="Key that signs pagination cursors; defaults to one derived from jwt_secret.",
    )

    @field_validator("jwt_secret", "cursor_secret")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        # RFC 7518 3.2: an HS256 key must be at least as long as the hash output (32 bytes).
        if value is not None and len(value.get_secret_value().encode()) < 32:
            raise ValueError("must be at least 32 bytes long")
        return value

    @model_validator(mode="after")
    def _own_secrets_outside_development(self) -> Self:
        if self.env == "development" or not self.uses_development_secret:
            return self
        name = (
            "AGENT_HISTORY_JWT_SECRET"
            if self.jwt_public_key is None
            else "AGENT_HISTORY_CURSOR_SECRET"
        )
        raise ValueError(
            f"AGENT_HISTORY_ENV is {self.env}, but without {name} the API would sign with the "
            "public development secret, with which anyone can forge credentials: set "
            f"{name} to a secret of your own (at least 32 bytes), or "
            "AGENT_HISTORY_ENV=development for local use"
        )

    @property
    def uses_development_secret(self) -> bool:
        """True when a secret in use is the public development default."""
        default = self.jwt_secret.get_secret_value() == DEVELOPMENT_JWT_SECRET
        return default and (self.jwt_public_key is None or self.cursor_secret is None)
