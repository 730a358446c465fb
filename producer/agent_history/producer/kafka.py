"""The Kafka producer that the shipper drives: aiokafka's, made the one way the shipper needs
it, and what the shipper needs of it (a fake broker stands in for it in unit tests)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import CorruptRecordException, MessageSizeTooLargeError, RecordTooLargeError

from agent_history.contract.events import record_headers
from agent_history.producer.settings import ProducerSettings

HEADERS = [(name, value.encode()) for name, value in record_headers().items()]
# The record's own fault: sent again it fails again, so it is dropped (logged, counted lost).
UNSENDABLE = (MessageSizeTooLargeError, RecordTooLargeError, CorruptRecordException)


class Producer(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    async def send(
        self, topic: str, value: bytes, *, key: bytes, headers: list[tuple[str, bytes]]
    ) -> asyncio.Future[Any]: ...


def kafka_options(settings: ProducerSettings) -> dict[str, Any]:
    """How the shipper's AIOKafkaProducer is made (the benchmark's reference uses the same)."""
    return {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "client_id": "agent-history-producer",
        "enable_idempotence": True,  # retries never duplicate or reorder a key's records
        "acks": "all",
        "linger_ms": settings.linger_ms,
        # aiokafka waits in send() while a partition's batch is full: small ones throttle it.
        "max_batch_size": 256 << 10,
    }


def kafka_producer(settings: ProducerSettings) -> Callable[[], Producer]:
    def make() -> Producer:
        producer: Producer = AIOKafkaProducer(**kafka_options(settings))
        return producer

    return make
