"""Publishes execution events: one record per event, keyed by execution id, acks from all."""

from __future__ import annotations

from datetime import UTC, datetime
from types import TracebackType
from typing import Self, TypeVar
from uuid import uuid4

from faststream.kafka import KafkaBroker

from agent_history.contract.events import (
    SPEC_VERSION,
    CancelledData,
    CompletedData,
    Event,
    ExecutionCancelled,
    ExecutionCompleted,
    ExecutionData,
    ExecutionFailed,
    ExecutionQueued,
    ExecutionStarted,
    FailedData,
    RunRequestData,
    encode_event,
    record_headers,
    record_key,
)
from agent_history.producer.settings import ProducerSettings

_E = TypeVar(
    "_E", ExecutionQueued, ExecutionStarted, ExecutionCompleted, ExecutionFailed, ExecutionCancelled
)


class Publisher:
    """Use as ``async with Publisher(settings) as publisher:`` or call connect()/close()."""

    def __init__(self, settings: ProducerSettings) -> None:
        self._settings = settings
        # Idempotent producer: retries never duplicate or reorder a key's records (acks=all).
        self._broker = KafkaBroker(
            settings.kafka_bootstrap_servers,
            enable_idempotence=True,
            linger_ms=settings.linger_ms,
        )

    async def connect(self) -> None:
        await self._broker.connect()

    async def close(self) -> None:
        """Flushes what is in flight, then disconnects."""
        await self._broker.stop()

    async def __aenter__(self) -> Self:
        await self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def publish(self, event: Event) -> None:
        """Publish one event and wait until the broker has it."""
        await self._broker.publish(
            encode_event(event),
            self._settings.topic,
            key=record_key(event.execution_id),
            headers=record_headers(),
        )

    async def _emit(self, kind: type[_E], data: ExecutionData) -> _E:
        event = kind.model_validate(
            {
                "specversion": SPEC_VERSION,
                "id": uuid4(),
                "source": self._settings.source,
                "subject": data.execution_id,
                "time": datetime.now(UTC),
                "data": data,
            }
        )
        await self.publish(event)
        return event

    async def publish_queued(self, data: RunRequestData) -> ExecutionQueued:
        return await self._emit(ExecutionQueued, data)

    async def publish_started(self, data: RunRequestData) -> ExecutionStarted:
        return await self._emit(ExecutionStarted, data)

    async def publish_completed(self, data: CompletedData) -> ExecutionCompleted:
        return await self._emit(ExecutionCompleted, data)

    async def publish_failed(self, data: FailedData) -> ExecutionFailed:
        return await self._emit(ExecutionFailed, data)

    async def publish_cancelled(self, data: CancelledData) -> ExecutionCancelled:
        return await self._emit(ExecutionCancelled, data)
