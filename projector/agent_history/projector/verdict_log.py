"""The watchdog's Kafka clients: the topic's end offsets, and an idempotent producer for the
verdicts (VerdictLog in ports.py)."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from agent_history.contract.events import (
    ExecutionTimedOut,
    encode_event,
    record_headers,
    record_key,
    wire_headers,
)
from agent_history.contract.settings import KafkaSettings

_HEADERS = wire_headers(record_headers())


class KafkaVerdictLog:
    def __init__(self, settings: KafkaSettings) -> None:
        self._topic = settings.topic
        servers = settings.kafka_bootstrap_servers
        self._producer = AIOKafkaProducer(
            bootstrap_servers=servers, enable_idempotence=True, acks="all"
        )
        # In no group: it only asks for end offsets, and never reads a record.
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=servers, group_id=None, enable_auto_commit=False
        )

    async def start(self) -> None:
        await self._producer.start()
        await self._consumer.start()

    async def stop(self) -> None:
        try:
            await self._consumer.stop()
        finally:
            await self._producer.stop()

    async def end_offsets(self) -> dict[int, int]:
        partitions = await self._producer.partitions_for(self._topic)
        if not partitions:
            raise KafkaError(f"topic {self._topic!r} has no partitions (does it exist?)")
        wanted = [TopicPartition(self._topic, p) for p in sorted(partitions)]
        ends = await self._consumer.end_offsets(wanted)
        return {tp.partition: offset for tp, offset in ends.items()}

    async def publish(self, verdicts: list[ExecutionTimedOut]) -> None:
        sent = [
            await self._producer.send(
                self._topic,
                encode_event(verdict),
                key=record_key(verdict.execution_id),
                headers=_HEADERS,
            )
            for verdict in verdicts
        ]
        await asyncio.gather(*sent)
