"""The producer's settings."""

from __future__ import annotations

from pydantic import Field

from agent_history.contract.settings import KafkaSettings


class ProducerSettings(KafkaSettings):
    source: str = Field(default="agent-history/producer", description="CloudEvents `source`.")
    linger_ms: int = 5
