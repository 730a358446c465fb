"""The live projector's Kafka side: a FastStream batch subscriber in its consumer group.

Each batch goes to consumer.Projector as the raw records aiokafka fetched; on assignment a
partition starts at its checkpoint, and on revocation the batch in flight commits first.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage
from faststream.kafka.message import FAKE_CONSUMER
from faststream.kafka.message import KafkaMessage as _KafkaMessage
from faststream.message import StreamMessage

from agent_history.projector.consumer import Projector
from agent_history.projector.settings import ProjectorSettings


class _SeekOnAssign(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, projector: Projector, consumer: Callable[[], AIOKafkaConsumer | None]):
        self._projector = projector
        self._consumer = consumer

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        # Hand the partitions over with the batch in flight committed and its offsets hinted.
        await self._projector.settle()

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        consumer = self._consumer()
        if consumer is not None:
            await self._projector.seek_to_checkpoints(consumer, assigned)


async def _batch_message(records: tuple[ConsumerRecord, ...]) -> StreamMessage[Any]:
    """The batch as FastStream's message, without FastStream's parser reading every record's
    headers and body first: the handler reads the raw records itself. A coroutine function:
    FastStream runs a plain function in a worker thread, a hop there and back each batch."""
    first, last = records[0], records[-1]
    message_id = f"{first.offset}-{last.offset}-{first.timestamp}"
    return _KafkaMessage(records, b"", message_id=message_id, consumer=FAKE_CONSUMER)


async def _undecoded(message: KafkaMessage) -> None:
    return None


def subscribe(settings: ProjectorSettings, projector: Projector) -> KafkaBroker:
    """A broker with ``projector`` subscribed to the topic; start it with ``broker.start()``."""
    broker = KafkaBroker(
        settings.kafka_bootstrap_servers,
        allow_auto_create_topics=False,
        # The service's logging (server/logs.py) rather than FastStream's own coloured handler.
        logger=logging.getLogger(__name__),
    )
    listener = _SeekOnAssign(projector, lambda: subscriber.consumer)
    subscriber = broker.subscriber(
        settings.topic,
        batch=True,
        group_id=settings.consumer_group,
        ack_policy=AckPolicy.MANUAL,
        auto_offset_reset="earliest",
        max_records=settings.batch_max_records,
        batch_timeout_ms=settings.batch_timeout_ms,
        max_partition_fetch_bytes=settings.max_partition_fetch_bytes,
        fetch_max_bytes=settings.fetch_max_bytes,
        listener=listener,
        # The handler reads the raw records; FastStream's default parser and decoder would
        # first wrap and decode every record of the batch on its own, for nothing.
        parser=_batch_message,
        decoder=_undecoded,
    )

    @subscriber
    async def project(message: KafkaMessage) -> None:
        consumer = subscriber.consumer
        assert consumer is not None, "the subscriber hands out messages only while started"
        raw = message.raw_message
        records = raw if isinstance(raw, tuple) else (raw,)
        # In a context of its own: FastStream keeps the message in a context variable while the
        # handler runs, every task and timer started meanwhile copies the context, and asyncio
        # keeps a timer's copy until the timer is due, cancelled or not (a Kafka request's
        # timeout is 40 s). The batch's records lived on as long as the timers of its write.
        await asyncio.create_task(
            projector.handle(records, consumer), context=contextvars.Context()
        )

    return broker
