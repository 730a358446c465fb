"""The Kafka producer that the shipper drives: aiokafka's, made the one way the shipper needs
it, and what the shipper needs of it (a fake broker stands in for it in unit tests)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import CorruptRecordException, MessageSizeTooLargeError, RecordTooLargeError

from agent_history.contract.events import (
    encode_binary,
    parse_event,
    record_headers,
    wire_headers,
)
from agent_history.producer.settings import ProducerSettings

HEADERS = wire_headers(record_headers())
Record = tuple[list[tuple[str, bytes]], bytes]  # headers, value


def structured(value: bytes) -> Record:
    """The spooled event as it is: CloudEvents structured mode."""
    return HEADERS, value


def binary(value: bytes) -> Record:
    """The spooled event in binary mode: attributes in ce_* headers, the value its data."""
    headers, data = encode_binary(parse_event(value))
    return wire_headers(headers), data


CONTENT_MODES: dict[str, Callable[[bytes], Record]] = {"structured": structured, "binary": binary}
# The record's own fault: sent again it fails again, so it is dropped (logged, counted lost).
UNSENDABLE = (MessageSizeTooLargeError, RecordTooLargeError, CorruptRecordException)


class Producer(Protocol):
    async def start(self) -> None: ...
    async def stop(self) -> None:
        """Disconnect, dropping what is not acknowledged yet (the spool still has it)."""
        ...

    async def send(
        self, topic: str, value: bytes, *, key: bytes, headers: list[tuple[str, bytes]]
    ) -> asyncio.Future[Any]: ...
    async def reachable(self) -> bool:
        """Whether a broker answers now (a metadata request)."""
        ...


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


class KafkaProducer:
    """aiokafka's producer, and a way to ask whether its broker is there at all."""

    def __init__(self, settings: ProducerSettings) -> None:
        self._producer = AIOKafkaProducer(**kafka_options(settings))

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        # aiokafka's stop() first waits for every batch it holds: with the broker gone, until
        # its request timeout, its sender retrying metadata in a tight loop all along (a core,
        # and two log lines each time). It has no way to drop them; its sender is cancelled
        # and its flush skipped instead, and what it held is left to the garbage collector.
        sender = getattr(getattr(self._producer, "_sender", None), "sender_task", None)
        accumulator = getattr(self._producer, "_message_accumulator", None)
        if sender is not None and accumulator is not None:
            sender.cancel()
            accumulator.close = _nothing_to_flush
            # Until it has finished: aiokafka's stop() awaits a sender still finishing, and its
            # cancellation then propagates into whoever stops the producer.
            await asyncio.wait([sender])
        await self._producer.stop()

    async def send(
        self, topic: str, value: bytes, *, key: bytes, headers: list[tuple[str, bytes]]
    ) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = await self._producer.send(
            topic, value, key=key, headers=headers
        )
        return future

    async def reachable(self) -> bool:
        return bool(await self._producer.client.force_metadata_update())


async def _nothing_to_flush() -> None:
    pass


def kafka_producer(settings: ProducerSettings) -> Callable[[], Producer]:
    return lambda: KafkaProducer(settings)
