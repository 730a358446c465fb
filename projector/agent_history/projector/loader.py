"""Replay's reading side: the topic, up to given offsets, folded into the tables of a schema.

Like the live projector, each batch's transaction overlaps reading and decoding the next one
(pipeline.Pipeline).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from functools import partial
from uuid import UUID

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from agent_history.projector.core.changes import (
    Changes,
    Held,
    changes_of,
    held_back,
    held_rows,
)
from agent_history.projector.core.decode import Record
from agent_history.projector.pipeline import Pipeline, Write
from agent_history.projector.settings import ProjectorSettings
from agent_history.projector.store import write_changes, write_transaction
from agent_history.read_model.prepared import driver

# Events read so far, and how many there are in all (as far as known).
Progress = Callable[[int, int], None]
# The rows of runs not ended yet that a load holds back (held_back) are at most a batch's
# records over this: each waits for its own partition's next batch, so with many partitions or
# many runs that never end they would add up.
_HELD_DIVISOR = 4


def replay_consumer(settings: ProjectorSettings) -> AIOKafkaConsumer:
    """A consumer in no group, for reading partitions assigned to it (not started yet)."""
    return AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        max_partition_fetch_bytes=settings.max_partition_fetch_bytes,
        fetch_max_bytes=settings.fetch_max_bytes,
    )


async def read_from_start(
    consumer: AIOKafkaConsumer, topic: str, partitions: Iterable[int]
) -> list[TopicPartition]:
    """Assign ``partitions`` to the started consumer, each to be read from its beginning."""
    tps = [TopicPartition(topic, p) for p in partitions]
    consumer.assign(tps)
    await consumer.seek_to_beginning(*tps)
    return tps


class Loader:
    """Reads the topic up to given offsets and folds what it reads into ``schema``'s tables."""

    def __init__(
        self,
        settings: ProjectorSettings,
        consumer: AIOKafkaConsumer,
        schema: str,
        progress: Progress | None,
        total: int,
        batch_records: int,
    ) -> None:
        self._settings = settings
        self._consumer = consumer
        self._schema = schema
        self._progress = progress
        self._batch = batch_records
        self.total = total
        self.events = 0
        self.invalid = 0
        # Erased users, whose events are left out (replay reads them before loading, and
        # again at the swap); how many events that left out.
        self.erased: frozenset[UUID] = frozenset()
        self.dropped = 0

    async def load(self, engine: AsyncEngine, until: dict[int, int]) -> None:
        """One transaction per batch, each written while the next batch is read and decoded.
        A run not ended yet waits for a later batch (held_back); the rows still held after
        the last batch are written then."""
        pipeline = Pipeline[None]()

        async def write_next(write: Write[None]) -> None:
            if pipeline.busy:
                await pipeline.finish()
            await pipeline.start(write)

        held: Held = {}
        most = self._batch // _HELD_DIVISOR
        while records := await self._read(until):
            changes = changes_of(records, self._settings.max_event_bytes, self.erased)
            changes.rows, held = held_back(changes.rows, held, records, most)
            count = len(records)
            # Not kept while the batch before is written and the next one read (memory).
            del records
            await write_next(partial(self._commit, engine, changes, count))
        if held:
            await write_next(partial(self._commit, engine, Changes(rows=held_rows(held)), 0))
        if pipeline.busy:
            await pipeline.finish()

    async def load_in(self, conn: AsyncConnection, until: dict[int, int]) -> None:
        """Within ``conn``'s transaction, whose search path is already the schema (so it has
        sent a statement, and its asyncpg connection is in the transaction)."""
        raw = await driver(conn)
        while records := await self._read(until):
            changes = changes_of(records, self._settings.max_event_bytes, self.erased)
            await write_changes(raw, changes.agents, changes.users, changes.rows.values())
            self._count_batch(changes, len(records))

    def skip_to(self, offsets: dict[int, int]) -> None:
        """Read on from these offsets (those below them were loaded elsewhere)."""
        for partition, offset in offsets.items():
            self._consumer.seek(TopicPartition(self._settings.topic, partition), offset)

    async def _read(self, until: dict[int, int]) -> list[Record]:
        """The next records below ``until``; empty once every partition got there."""
        while await self._behind(until):
            fetched = await self._consumer.getmany(timeout_ms=500, max_records=self._batch)
            records: list[Record] = [
                r for batch in fetched.values() for r in batch if r.offset < until[r.partition]
            ]
            if records:
                return records
        return []

    async def _behind(self, until: dict[int, int]) -> bool:
        topic = self._settings.topic
        for partition, offset in until.items():
            if await self._consumer.position(TopicPartition(topic, partition)) < offset:
                return True
        return False

    async def _commit(
        self, engine: AsyncEngine, changes: Changes, records: int, writing: asyncio.Event
    ) -> None:
        # The names first, committed on their own: loaders of other shares of the partitions
        # (shares.py) upsert the same agents and users, and would otherwise wait for this
        # batch's rows statement too, taking turns instead of writing side by side.
        if changes.agents or changes.users:
            async with self._transaction(engine) as conn:
                await write_changes(conn, changes.agents, changes.users, ())
        async with self._transaction(engine) as conn:
            await write_changes(conn, {}, {}, changes.rows.values(), writing)
        self._count_batch(changes, records)

    @asynccontextmanager
    async def _transaction(self, engine: AsyncEngine) -> AsyncIterator[asyncpg.Connection]:
        # A lost shadow transaction costs only a rerun: no need to wait for the disk.
        async with write_transaction(engine, schema=self._schema, asynchronous_commit=True) as conn:
            yield conn

    def _count_batch(self, changes: Changes, records: int) -> None:
        # Invalid records were dead-lettered by the live projector; here they are only counted.
        self.count(records, len(changes.poison), changes.dropped.total())

    def count(self, events: int, invalid: int, dropped: int) -> None:
        """Add events read and applied (here, or by a loader of a share of the partitions)."""
        self.invalid += invalid
        self.dropped += dropped
        self.events += events
        self.total = max(self.total, self.events)
        if self._progress is not None:
            self._progress(self.events, self.total)
