"""Kafka as the shipper sees it, in memory: up or down, acknowledging at once or when told."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from aiokafka.errors import KafkaConnectionError

from agent_history.producer.kafka import Producer


@dataclass(frozen=True)
class Record:
    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


@dataclass
class FakeBroker:
    up: bool = True
    acknowledging: bool = True  # else sends wait in ``pending`` for acknowledge() or fail()
    hanging: bool = False  # send() itself never returns, as aiokafka's with a full batch
    stuck_starts: int = 0  # so many start() calls never return, as aiokafka's waiting for an id
    # stop() raises the cancellation of a task of its own, as aiokafka's did when its sender
    # was cancelled while busy
    cancelled_stops: bool = False
    records: list[Record] = field(default_factory=list)
    pending: list[tuple[Record, asyncio.Future[Any]]] = field(default_factory=list)
    starts: int = 0

    def producer(self) -> Producer:
        return FakeProducer(self)

    def acknowledge(self) -> None:
        for record, future in self.pending:
            if not future.done():
                self.records.append(record)
                future.set_result(None)
        self.pending.clear()

    def fail(self, error: Exception) -> None:
        for _, future in self.pending:
            if not future.done():
                future.set_exception(error)
        self.pending.clear()


class FakeProducer:
    def __init__(self, broker: FakeBroker) -> None:
        self._broker = broker

    async def start(self) -> None:
        self._broker.starts += 1
        if self._broker.stuck_starts:
            self._broker.stuck_starts -= 1
            await asyncio.Event().wait()
        if not self._broker.up:
            raise KafkaConnectionError("the fake broker is down")

    async def stop(self) -> None:
        if self._broker.cancelled_stops:
            inner = asyncio.create_task(asyncio.sleep(3600))
            inner.cancel()
            await inner

    async def reachable(self) -> bool:
        return self._broker.up

    async def send(
        self, topic: str, value: bytes, *, key: bytes, headers: list[tuple[str, bytes]]
    ) -> asyncio.Future[Any]:
        if self._broker.hanging:
            await asyncio.Event().wait()
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        record = Record(topic, key, value, headers)
        if self._broker.acknowledging:
            self._broker.records.append(record)
            future.set_result(None)
        else:
            self._broker.pending.append((record, future))
        return future
