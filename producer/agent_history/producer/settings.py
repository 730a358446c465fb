"""The producer's settings."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, TypeAlias

from pydantic import Field

from agent_history.contract.events import HEARTBEAT_INTERVAL
from agent_history.contract.settings import KafkaSettings

FsyncPolicy: TypeAlias = Literal["never", "interval", "always"]


class ProducerSettings(KafkaSettings):
    source: str = Field(
        default="agent-history/producer", min_length=1, description="CloudEvents `source`."
    )
    # How long a batch waits for more events: aiokafka's batches, and the shipper before it
    # parks once it has read the spool to its end.
    linger_ms: int = 5
    # How records are written to Kafka (the CloudEvents Kafka binding's two modes); the
    # projector reads both. The spool holds structured events either way.
    content_mode: Literal["structured", "binary"] = "structured"
    spool_dir: Path | None = Field(
        default=None,
        description="Where events wait for the broker; default "
        "$XDG_CACHE_HOME/agent-history/spool (else ~/.cache/...). One folder per topic in it.",
    )
    # An event is in the OS once recorded, so it survives the process being killed whatever
    # this says; fsync decides what a machine crash (power, kernel) may take with it.
    spool_fsync: FsyncPolicy = "interval"
    spool_fsync_interval_ms: int = Field(default=1000, gt=0)
    spool_max_bytes: int = Field(default=1 << 30, gt=0)
    spool_full_wait_ms: int = Field(default=100, ge=0)
    # While a tracked run is open, an ExecutionHeartbeat this often tells the watchdog that its
    # worker is alive; the watchdog's lost_after should be a few of these.
    heartbeat_interval_ms: int = Field(default=int(HEARTBEAT_INTERVAL.total_seconds() * 1000), gt=0)
    # close() waits this long for the broker; what is left stays spooled for the next start.
    close_timeout_ms: int = Field(default=10_000, ge=0)


def spool_directory(settings: ProducerSettings) -> Path:
    """The folder of this topic's spool. Per topic, so that an event is only ever shipped to
    the topic it was recorded for, whichever process ships it."""
    root = settings.spool_dir
    if root is None:
        cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        root = Path(cache) / "agent-history" / "spool"
    return root / settings.topic
