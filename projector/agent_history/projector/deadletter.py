"""The dead-letter topic: poison records, kept whole, with why and where they came from."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

from aiokafka import AIOKafkaProducer

from agent_history.contract.events import (
    DLQ_CONSUMER_GROUP,
    DLQ_ORIGIN_OFFSET,
    DLQ_ORIGIN_PARTITION,
    DLQ_ORIGIN_TOPIC,
    DLQ_REASON,
)
from agent_history.contract.settings import KafkaSettings
from agent_history.projector.core.decode import Poison

log = logging.getLogger(__name__)


class DeadLetters:
    def __init__(self, settings: KafkaSettings, consumer_group: str) -> None:
        self._topic = settings.dlq_topic
        self._group = consumer_group
        self._producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap_servers, enable_idempotence=True
        )

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    async def send(self, poison: list[Poison]) -> Counter[int]:
        """Publish and wait for the broker's acks; returns how many per source partition."""
        sent = [await self._producer.send(self._topic, **self._record(p)) for p in poison]
        await asyncio.gather(*sent)
        for p in poison:
            r = p.record
            where = {"topic": r.topic, "partition": r.partition, "offset": r.offset}
            log.warning(
                "dead-lettered %s[%d]@%d: %s", r.topic, r.partition, r.offset, p.reason, extra=where
            )
        return Counter(p.record.partition for p in poison)

    def _record(self, poison: Poison) -> dict[str, object]:
        r = poison.record
        headers = [
            *r.headers,
            (DLQ_REASON, poison.reason.encode()),
            (DLQ_ORIGIN_TOPIC, r.topic.encode()),
            (DLQ_ORIGIN_PARTITION, str(r.partition).encode()),
            (DLQ_ORIGIN_OFFSET, str(r.offset).encode()),
            (DLQ_CONSUMER_GROUP, self._group.encode()),
        ]
        return {"key": r.key, "value": r.value, "headers": headers}
