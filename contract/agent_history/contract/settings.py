"""What every service's settings share: AGENT_HISTORY_* environment variables, and Kafka.

Each entrypoint builds its settings once and passes them down; nothing reads the environment
at import time. Each service's own settings class lives with that service.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Literal

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from agent_history.contract.events import DEFAULT_TOPIC, DLQ_SUFFIX

ENV_PREFIX = "AGENT_HISTORY_"
LOCAL_KAFKA = "127.0.0.1:19092"


class SettingsBase(BaseSettings):
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


class KafkaSettings(SettingsBase):
    kafka_bootstrap_servers: str = LOCAL_KAFKA
    topic: str = DEFAULT_TOPIC
    dlq_topic: str = f"{DEFAULT_TOPIC}{DLQ_SUFFIX}"
    # Used when the project creates its topics (`agent-history topics`).
    topic_partitions: int = 6


class LogSettings(SettingsBase):
    """How a service logs (every service's settings include these)."""

    # text: readable lines; json: one JSON object per line, for a log collector.
    log_format: Literal["text", "json"] = "text"
