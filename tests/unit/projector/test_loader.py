"""Replay's load, batch by batch: what each write carries once runs are held back
(core.changes.held_back). Kafka and PostgreSQL are left out: the batches are scripted and the
writes recorded (tests/integration/test_replay.py runs the real ones)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from uuid import UUID, uuid4

from aiokafka import AIOKafkaConsumer
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from agent_history.projector.core.changes import Changes
from agent_history.projector.core.decode import Record
from agent_history.projector.loader import Loader
from agent_history.projector.settings import ProjectorSettings
from tests.unit.projector.core.test_batch import record, wire


class _Scripted(Loader):
    """A loader that reads the given batches and records what each write carries: the rows'
    ids, whether it names anyone, and how many records it counts."""

    def __init__(self, consumer: AIOKafkaConsumer, batches: Sequence[Sequence[Record]]) -> None:
        super().__init__(ProjectorSettings(), consumer, "replay", None, 0, batch_records=40)
        self._batches = [list(batch) for batch in batches]
        self.writes: list[tuple[set[UUID], bool, int]] = []

    async def _read(self, until: dict[int, int]) -> list[Record]:
        return self._batches.pop(0) if self._batches else []

    async def _commit(
        self, engine: AsyncEngine, changes: Changes, records: int, writing: asyncio.Event
    ) -> None:
        writing.set()
        self.writes.append((set(changes.rows), bool(changes.agents or changes.users), records))


async def test_rows_still_held_after_the_last_batch_are_written_last_without_names() -> None:
    queued, failed, started = uuid4(), uuid4(), uuid4()
    consumer = AIOKafkaConsumer(bootstrap_servers="127.0.0.1:9")  # never started
    loader = _Scripted(
        consumer,
        [
            [
                record(wire("ExecutionQueued", execution_id=queued), partition=0),
                record(wire("ExecutionFailed", execution_id=failed), partition=0),
            ],
            [record(wire("ExecutionStarted", execution_id=started), partition=1)],
        ],
    )
    engine = create_async_engine("postgresql+asyncpg://127.0.0.1:9/none")  # never connected
    await loader.load(engine, {0: 2, 1: 1})
    await engine.dispose()
    await consumer.stop()
    # The batches' names go with them; the runs not ended, read in partitions that no batch
    # reads again, go in one last write, which names no one and counts no records.
    assert loader.writes == [({failed}, True, 2), (set(), True, 1), ({queued, started}, False, 0)]
