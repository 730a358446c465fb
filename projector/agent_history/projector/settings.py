"""The projector's settings (also those of replay and prune)."""

from __future__ import annotations

from pydantic import Field

from agent_history.contract.settings import KafkaSettings
from agent_history.read_model.db import DatabaseSettings


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
