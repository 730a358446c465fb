"""Replay's reading side: the topic, up to given offsets, folded into the tables of a schema.

Like the live projector, each batch's transaction overlaps reading and decoding the next one
(pipeline.Pipeline).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from functools import partial
from uuid import UUID

from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from agent_history.projector.core.changes import Changes, changes_of
from agent_history.projector.core.decode import Record
from agent_history.projector.pipeline import Pipeline
from agent_history.projector.settings import ProjectorSettings
from agent_history.projector.store import commit_asynchronously, use_schema, write_changes

# Events read so far, and how many there are in all (as far as known).
Progress = Callable[[int, int], None]


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
        """One transaction per batch, each written while the next batch is read and decoded."""
        pipeline = Pipeline[None]()
        while records := await self._read(until):
            changes = changes_of(records, self._settings.max_event_bytes, self.erased)
            if pipeline.busy:
                await pipeline.finish()
            await pipeline.start(partial(self._commit, engine, changes, len(records)))
        if pipeline.busy:
            await pipeline.finish()

    async def load_in(self, conn: AsyncConnection, until: dict[int, int]) -> None:
        """Within ``conn``'s transaction, whose search path is already the schema."""
        while records := await self._read(until):
            changes = changes_of(records, self._settings.max_event_bytes, self.erased)
            await self._write(conn, changes, len(records), None)

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
        async with engine.begin() as conn:
            await use_schema(conn, self._schema)
            # A lost shadow transaction costs only a rerun: no need to wait for the disk.
            await commit_asynchronously(conn)
            await self._write(conn, changes, records, writing)

    async def _write(
        self,
        conn: AsyncConnection,
        changes: Changes,
        records: int,
        writing: asyncio.Event | None,
    ) -> None:
        await write_changes(conn, changes.agents, changes.users, changes.rows.values(), writing)
        # Invalid records were dead-lettered by the live projector; here they are only counted.
        self.invalid += len(changes.poison)
        self.dropped += changes.dropped.total()
        self.events += records
        self.total = max(self.total, self.events)
        if self._progress is not None:
            self._progress(self.events, self.total)
