"""Settings for each service, read from AGENT_HISTORY_* environment variables.

Each entrypoint builds its settings once and passes them down; nothing reads the environment
at import time.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from agent_history.events import DEFAULT_TOPIC

LOCAL_KAFKA = "127.0.0.1:19092"
LOCAL_DATABASE_URL = (
    "postgresql+asyncpg://agent_history:agent_history@127.0.0.1:15432/agent_history"
)


ENV_PREFIX = "AGENT_HISTORY_"


class _Base(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)


def environment_of(settings: BaseSettings, base: Mapping[str, str] = os.environ) -> dict[str, str]:
    """An environment in which another process reads exactly ``settings``: ``base`` without
    its own AGENT_HISTORY_* variables, plus one variable for each setting that has a value."""
    env = {name: value for name, value in base.items() if not name.startswith(ENV_PREFIX)}
    for name, value in settings.model_dump().items():
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if isinstance(value, list | dict):
            value = json.dumps(value)
        if value is not None:
            env[f"{ENV_PREFIX}{name.upper()}"] = str(value)
    return env


class KafkaSettings(_Base):
    kafka_bootstrap_servers: str = LOCAL_KAFKA
    topic: str = DEFAULT_TOPIC
    dlq_topic: str = f"{DEFAULT_TOPIC}.dlq"
    # Used when the project creates its topics (`agent-history topics`).
    topic_partitions: int = 6


class ProducerSettings(KafkaSettings):
    source: str = Field(default="agent-history/producer", description="CloudEvents `source`.")
    linger_ms: int = 5


class DatabaseSettings(_Base):
    database_url: str = LOCAL_DATABASE_URL
    database_pool_size: int = 10


class ProjectorSettings(KafkaSettings, DatabaseSettings):
    consumer_group: str = "agent-history-projector"
    # Executions whose execution_start is older are pruned (`prune`), and left out by `replay`.
    retention_days: float | None = None
    # A backlog is applied in batches this big: one transaction each, and an execution's
    # events in one batch are written as one row (docs/benchmarks.md).
    batch_max_records: int = 10_000
    batch_timeout_ms: int = 50
    # Kafka fetches: up to this much per partition and request, so a backlog fills big batches.
    max_partition_fetch_bytes: int = 8 << 20
    synchronous_commit: bool = Field(
        default=False,
        description="Wait for each batch's commit to reach the disk. Off is safe: the "
        "checkpoint commits with the rows and the projector rewinds to it (docs/benchmarks.md).",
    )
    max_event_bytes: int = 1_048_576
    retry_max_seconds: float = 5.0


# Signs and verifies tokens when nothing else is configured; the API warns loudly when it is used.
DEVELOPMENT_JWT_SECRET = "agent-history-development-secret-never-use-in-production"


class ApiSettings(DatabaseSettings):
    host: str = "127.0.0.1"
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

    @property
    def uses_development_secret(self) -> bool:
        """True when a secret in use is the public development default."""
        default = self.jwt_secret.get_secret_value() == DEVELOPMENT_JWT_SECRET
        return default and (self.jwt_public_key is None or self.cursor_secret is None)


class ServicesSettings(_Base):
    """Where `agent-history services` keeps the local broker and database."""

    state_dir: Path = Path(".local")
    kafka_version: str = "4.4.0"
    kafka_port: int = 19092
    kafka_controller_port: int = 19093
    postgres_port: int = 15432
