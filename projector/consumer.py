"""The projector: a FastStream batch subscriber that applies each batch in one transaction.

Where the projection stands is the checkpoint row of each partition, written in the same
transaction as the rows. Every batch re-reads (and locks) those rows first, so records already
applied are dropped and a gap is never skipped, whatever Kafka's committed offsets say. The
Kafka commit comes after the database commit and is only a hint for the next assignment.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from agent_history.settings import ProjectorSettings
from projector import store
from projector.batch import Plan, Record, changes_of, plan_batch
from projector.deadletter import DeadLetters

log = logging.getLogger(__name__)


def retry_delay(attempt: int, cap: float) -> float:
    """Exponential backoff from 0.2 s, capped."""
    return min(cap, 0.1 * 2.0 ** min(attempt, 10))


class Projector:
    def __init__(
        self, settings: ProjectorSettings, engine: AsyncEngine, dead_letters: DeadLetters
    ) -> None:
        self._settings = settings
        self._engine = engine
        self._dead_letters = dead_letters
        # Partition -> position it was rewound to because of a gap (see plan_batch).
        self._rewound: dict[int, int] = {}
        self._failures = 0
        self.dead_lettered = 0

    async def handle(self, records: Sequence[Record], consumer: AIOKafkaConsumer) -> None:
        """Apply one batch; on any failure rewind to its start and try again later."""
        if not records:
            return
        try:
            plan = await self._apply(records)
        except Exception:
            self._failures += 1
            delay = retry_delay(self._failures, self._settings.retry_max_seconds)
            log.exception("batch failed (attempt %d); retrying in %.1fs", self._failures, delay)
            self._seek(consumer, _first_offsets(records))
            await asyncio.sleep(delay)
            return
        if self._failures:
            log.info("recovered after %d failed attempts", self._failures)
            self._failures = 0
        self._seek(consumer, plan.rewind)
        for partition in plan.next_offsets:
            self._rewound.pop(partition, None)
        await self._commit_hint(consumer, plan.next_offsets)

    async def _apply(self, records: Sequence[Record]) -> Plan:
        s = self._settings
        partitions = {r.partition for r in records}
        async with self._engine.begin() as conn:
            stored = await store.lock_checkpoints(conn, s.consumer_group, s.topic, partitions)
            gone = {p for p, at in self._rewound.items() if stored.get(p) == at}
            plan = plan_batch(records, stored, gone)
            changes = changes_of(plan.fresh, s.max_event_bytes)
            # Dead letters go out before the commit: at least once, never lost.
            dead = await self._dead_letters.send(changes.poison) if changes.poison else {}
            await store.upsert_references(conn, changes.agents, changes.users)
            await store.upsert_executions(conn, changes.rows.values())
            await store.save_checkpoints(conn, s.consumer_group, s.topic, plan.next_offsets, dead)
        for partition, position in plan.rewind.items():
            log.warning("partition %d starts past checkpoint %d; rewinding", partition, position)
            self._rewound[partition] = position
        self.dead_lettered += len(changes.poison)
        return plan

    def _seek(self, consumer: AIOKafkaConsumer, positions: dict[int, int]) -> None:
        for partition, offset in positions.items():
            consumer.seek(TopicPartition(self._settings.topic, partition), offset)

    async def _commit_hint(self, consumer: AIOKafkaConsumer, offsets: dict[int, int]) -> None:
        if not offsets:
            return
        tps = {TopicPartition(self._settings.topic, p): o for p, o in offsets.items()}
        try:
            await consumer.commit(tps)
        except KafkaError as e:  # a rebalance: the checkpoint table still has the truth
            log.info("offset commit skipped: %s", e)

    async def seek_to_checkpoints(
        self, consumer: AIOKafkaConsumer, assigned: set[TopicPartition]
    ) -> None:
        """Start each assigned partition at its checkpoint (an optimisation: see _apply)."""
        s = self._settings
        try:
            async with self._engine.connect() as conn:
                params = {"g": s.consumer_group, "t": s.topic}
                result = await conn.execute(_READ_CHECKPOINTS, params)
                stored = {row.partition: row.next_offset for row in result}
        except Exception as e:
            log.warning("could not read checkpoints on assignment (%s); batches will check", e)
            return
        for tp in assigned:
            if tp.topic == s.topic and tp.partition in stored:
                consumer.seek(tp, stored[tp.partition])


_READ_CHECKPOINTS = text(
    "SELECT partition, next_offset FROM projector_checkpoints "
    "WHERE consumer_group = :g AND topic = :t"
)


def _first_offsets(records: Sequence[Record]) -> dict[int, int]:
    first: dict[int, int] = {}
    for r in records:
        first[r.partition] = min(r.offset, first.get(r.partition, r.offset))
    return first


class _SeekOnAssign(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, projector: Projector, consumer: Callable[[], AIOKafkaConsumer | None]):
        self._projector = projector
        self._consumer = consumer

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        return None

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        consumer = self._consumer()
        if consumer is not None:
            await self._projector.seek_to_checkpoints(consumer, assigned)


def build_projector(
    settings: ProjectorSettings, engine: AsyncEngine, dead_letters: DeadLetters
) -> tuple[KafkaBroker, Projector]:
    """The broker with the projector subscribed; start it with ``broker.start()``."""
    broker = KafkaBroker(settings.kafka_bootstrap_servers, allow_auto_create_topics=False)
    projector = Projector(settings, engine, dead_letters)
    listener = _SeekOnAssign(projector, lambda: subscriber.consumer)
    subscriber = broker.subscriber(
        settings.topic,
        batch=True,
        group_id=settings.consumer_group,
        ack_policy=AckPolicy.MANUAL,
        auto_offset_reset="earliest",
        max_records=settings.batch_max_records,
        batch_timeout_ms=settings.batch_timeout_ms,
        listener=listener,
    )

    @subscriber
    async def project(message: KafkaMessage) -> None:
        consumer = subscriber.consumer
        assert consumer is not None, "the subscriber hands out messages only while started"
        raw = message.raw_message
        await projector.handle(raw if isinstance(raw, tuple) else (raw,), consumer)

    return broker, projector
