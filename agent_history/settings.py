"""Settings for each service, read from AGENT_HISTORY_* environment variables.

Each entrypoint builds its settings once and passes them down; nothing reads the environment
at import time.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from agent_history.events import DEFAULT_TOPIC

LOCAL_KAFKA = "127.0.0.1:19092"
LOCAL_DATABASE_URL = (
    "postgresql+asyncpg://agent_history:agent_history@127.0.0.1:15432/agent_history"
)


class _Base(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AGENT_HISTORY_", extra="ignore", frozen=True)


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
    batch_max_records: int = 2000
    batch_timeout_ms: int = 50
    max_event_bytes: int = 1_048_576
    retry_max_seconds: float = 5.0


class ApiSettings(DatabaseSettings):
    host: str = "127.0.0.1"
    port: int = 8000


class ServicesSettings(_Base):
    """Where `agent-history services` keeps the local broker and database."""

    state_dir: Path = Path(".local")
    kafka_version: str = "4.4.0"
    kafka_port: int = 19092
    kafka_controller_port: int = 19093
    postgres_port: int = 15432
