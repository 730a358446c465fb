"""What the live projector needs from the outside world, as ports: the real adapters
(store.PostgresStore, deadletter.DeadLetters, aiokafka's consumer) and tests' fakes fit them."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol
from uuid import UUID

from aiokafka import TopicPartition

from agent_history.contract.events import ExecutionTimedOut
from agent_history.projector.core.decode import Poison
from agent_history.projector.core.fold import Execution
from agent_history.projector.core.names import Name


class Transaction(Protocol):
    """One batch's writes, committed together when the transaction ends without an error."""

    async def lock_checkpoints(self, partitions: Iterable[int]) -> dict[int, int]:
        """The stored next offset of each partition, held until the commit."""
        ...

    async def erased_among(self, users: Iterable[UUID]) -> frozenset[UUID]:
        """Which of ``users`` are erased (by an erasure that committed before this batch)."""
        ...

    async def count_dropped(self, dropped: Mapping[UUID, int]) -> None:
        """Count the events of erased users this batch dropped."""
        ...

    async def write(
        self,
        agents: Mapping[UUID, Name],
        users: Mapping[UUID, Name],
        rows: Iterable[Execution],
        writing: asyncio.Event,
    ) -> None:
        """Write names and rows; set ``writing`` once the rows are on their way."""
        ...

    async def save_checkpoints(
        self, next_offsets: Mapping[int, int], dead_lettered: Mapping[int, int]
    ) -> None: ...


class Store(Protocol):
    def transaction(self) -> AbstractAsyncContextManager[Transaction]: ...

    async def stored_checkpoints(self) -> dict[int, int]:
        """Each partition's stored next offset, read outside any batch."""
        ...


class DeadLetterSink(Protocol):
    async def send(self, poison: list[Poison]) -> Counter[int]:
        """Publish and wait for the acks; how many went, per source partition."""
        ...


class Consumer(Protocol):
    """The parts of an AIOKafkaConsumer the projector uses."""

    def assignment(self) -> set[TopicPartition]: ...

    def seek(self, partition: TopicPartition, offset: int) -> None: ...

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None: ...

    def highwater(self, partition: TopicPartition) -> int | None:
        """The partition's end offset as the last fetch saw it; None before one."""
        ...


class BatchObserver(Protocol):
    """Told what each batch did, for metrics (metrics.ProjectorMetrics)."""

    def assigned(self, consumer: Consumer, stored: Mapping[int, int]) -> None: ...

    def applied(
        self,
        consumer: Consumer,
        records: int,
        poison: Sequence[Poison],
        dropped: int,
        rows: Iterable[Execution],
        seconds: float,
        next_offsets: Mapping[int, int],
    ) -> None:
        """A batch of ``records`` fresh records committed, in ``seconds``."""
        ...

    def failed(self) -> None: ...


class VerdictLog(Protocol):
    """The watchdog's side of the topic: where it stands, and where verdicts go."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def end_offsets(self) -> dict[int, int]:
        """Each partition's next offset: every record written so far lies below it."""
        ...

    async def publish(self, verdicts: list[ExecutionTimedOut]) -> None:
        """One record each, keyed by execution id; returns once the broker has them all."""
        ...
