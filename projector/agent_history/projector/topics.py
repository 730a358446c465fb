"""The project's Kafka topics, created with explicit settings rather than by auto-creation."""

from __future__ import annotations

import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from agent_history.contract.settings import KafkaSettings

log = logging.getLogger(__name__)

# The event topic is the source of truth: never delete by age or size.
_KEEP_FOREVER = {"retention.ms": "-1", "retention.bytes": "-1"}


async def ensure_topics(settings: KafkaSettings, replication_factor: int = 1) -> list[str]:
    """Create the event and dead-letter topics when missing; returns the names created."""
    wanted = [
        NewTopic(
            name=name,
            num_partitions=partitions,
            replication_factor=replication_factor,
            topic_configs=_KEEP_FOREVER,
        )
        for name, partitions in (
            (settings.topic, settings.topic_partitions),
            (settings.dlq_topic, 1),
        )
    ]
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in wanted if t.name not in existing]
        if missing:
            try:
                await admin.create_topics(missing)
            except TopicAlreadyExistsError:
                log.info("topics created concurrently by another process")
        return [t.name for t in missing]
    finally:
        await admin.close()
