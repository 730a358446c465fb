"""The projector's settings (also those of replay and prune), and the watchdog's."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field

from agent_history.contract.events import HEARTBEAT_INTERVAL
from agent_history.contract.settings import KafkaSettings, LogSettings, SettingsBase
from agent_history.read_model.db import DatabaseSettings

DEFAULT_CONSUMER_GROUP = "agent-history-projector"
# The default metrics and health ports (probes.py), one per service so they share a host.
PROJECTOR_METRICS_PORT = 9181
WATCHDOG_METRICS_PORT = 9182
REPLAY_METRICS_PORT = 9183


class ProbeSettings(SettingsBase):
    """The service's HTTP port for /metrics, /healthz and /readyz (probes.py)."""

    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=0, ge=0, le=65535, description="0: no port.")
    ready_stall_seconds: float = Field(
        default=60.0,
        gt=0,
        description="/readyz fails once the service has been stuck this long (failing or "
        "making no progress while it has work).",
    )


class ProjectorSettings(KafkaSettings, DatabaseSettings, ProbeSettings, LogSettings):
    metrics_port: int = Field(default=PROJECTOR_METRICS_PORT, ge=0, le=65535)
    consumer_group: str = DEFAULT_CONSUMER_GROUP
    # Executions whose execution_start is older are pruned (`prune`), and left out by `replay`.
    retention_days: float | None = None
    # Kafka hands out fetches of up to this many records; a batch is one fetch, or on a backlog
    # up to batch_max_fetches of them: one transaction each, and an execution's events in one
    # batch are written as one row (docs/benchmarks.md).
    batch_max_records: int = 10_000
    batch_max_fetches: int = Field(
        default=2,
        ge=1,
        description="On a backlog, a batch takes up to this many fetches (of up to "
        "batch_max_records each) while the batch before it is being written: the database's "
        "pace sets the size of a transaction (docs/benchmarks.md).",
    )
    batch_timeout_ms: int = 50
    # Kafka fetches: up to this much per partition and request, so a backlog fills big batches.
    max_partition_fetch_bytes: int = 4 << 20
    fetch_max_bytes: int = Field(
        default=16 << 20,
        gt=0,
        description="At most this much in one Kafka fetch response, over all partitions (the "
        "first partition's first batch comes whole even if bigger): bounds the start-up, when "
        "every partition is fetched at once (docs/benchmarks.md).",
    )
    synchronous_commit: bool = Field(
        default=False,
        description="Wait for each batch's commit to reach the disk. Off is safe: the "
        "checkpoint commits with the rows and the projector rewinds to it (docs/benchmarks.md).",
    )
    max_event_bytes: int = 1_048_576
    retry_max_seconds: float = 5.0
    # Measured in docs/benchmarks.md ("replay on every core").
    replay_workers: int = Field(
        default=1,
        ge=0,
        description="Loader processes of `replay`, each over its share of the topic's "
        "partitions; 0: one per core, at most one per partition; 1: replay loads in its own "
        "process.",
    )


class WatchdogSettings(KafkaSettings, DatabaseSettings, ProbeSettings, LogSettings):
    """`agent-history watchdog`."""

    metrics_port: int = Field(default=WATCHDOG_METRICS_PORT, ge=0, le=65535)

    # The projector whose checkpoints say how current the table is.
    consumer_group: str = DEFAULT_CONSUMER_GROUP
    watchdog_interval_seconds: float = Field(
        default=5.0,
        gt=0,
        description="How often the active watchdog judges the open runs, and how often a "
        "standby one tries to take over.",
    )
    lost_after_seconds: float = Field(
        default=4 * HEARTBEAT_INTERVAL.total_seconds(),
        gt=0,
        description="A running run with no event for this long has lost its worker: four "
        "heartbeats missed at the producer's default interval.",
    )
    queued_timeout_seconds: float = Field(
        default=3600.0,
        ge=0,
        description="A pending run is given up on after this long; 0: never.",
    )
    watchdog_max_verdicts: int = Field(
        default=1000, gt=0, description="At most this many verdicts a round; the rest next one."
    )
    retry_max_seconds: float = 5.0

    @property
    def lost_after(self) -> timedelta:
        return timedelta(seconds=self.lost_after_seconds)

    @property
    def queued_timeout(self) -> timedelta | None:
        seconds = self.queued_timeout_seconds
        return timedelta(seconds=seconds) if seconds else None
