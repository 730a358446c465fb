"""The projector: applies each batch of records in one transaction (subscriber.py feeds it).

Where the projection stands is the checkpoint row of each partition, written in the same
transaction as the rows. Every batch re-reads (and locks) those rows first, and a batch that
starts anywhere else is read again from them (core/plan.py): records already applied are not
applied twice and a gap is never skipped, whatever Kafka's committed offsets say. The Kafka
commit comes after the database commit and is only a hint for the next assignment.
Transactions run one at a time, in order, but each overlaps the decoding of the next batch
(Projector, on pipeline.Pipeline, which replay uses too): that keeps both this process and
PostgreSQL busy on a backlog. The Kafka commit does not hold up the next batch (hints.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from uuid import UUID

from aiokafka import TopicPartition

from agent_history.projector.core.changes import Changes, changes_of, combined
from agent_history.projector.core.decode import Record
from agent_history.projector.core.names import Name, StoredNames
from agent_history.projector.core.plan import (
    Plan,
    Stretch,
    firsts,
    joined,
    plan_batch,
    stretches_of,
)
from agent_history.projector.hints import CommitHints
from agent_history.projector.pipeline import Pipeline
from agent_history.projector.ports import (
    BatchObserver,
    Consumer,
    DeadLetterSink,
    Store,
    Transaction,
)
from agent_history.projector.settings import ProjectorSettings
from agent_history.projector.tracing import BatchSpan, BatchTracing

log = logging.getLogger(__name__)


def retry_delay(attempt: int, cap: float) -> float:
    """Exponential backoff from 0.2 s, capped."""
    return min(cap, 0.1 * 2.0 ** min(attempt, 10))


class Projector:
    """Applies each batch in one transaction, overlapped with decoding the next batch.

    ``handle`` decodes its batch, waits for the previous batch's transaction, and starts its
    own without waiting for it: PostgreSQL writes one batch while this process decodes the
    next. The transactions still run one after the other, in order. On a backlog, a full
    fetch decoded while the previous batch is still being written waits for the next fetch,
    and the two are written as one batch (up to ``batch_max_fetches``): the database's pace
    sets the size of the batches, and an execution's events in both are one row written, its
    agent's rollups rewritten once. A batch that fails rewinds the consumer to its first
    records and backs off; one that starts off its stored positions, or names a user erased
    since, is read again; either way the next batch, fetched before that, is dropped and read
    again too. A batch that reaches the end of its partitions (no backlog) is waited for, so
    the next one is fetched after it.
    """

    def __init__(
        self,
        settings: ProjectorSettings,
        store: Store,
        dead_letters: DeadLetterSink,
        commit_hint_timeout: float = 5.0,
        metrics: BatchObserver | None = None,
        tracing: BatchTracing | None = None,
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._tracing = tracing or BatchTracing(settings)
        self._hints = CommitHints(settings.topic, commit_hint_timeout)
        self._store = store
        self._dead_letters = dead_letters
        # Partition -> position it was rewound to because of a gap (see plan_batch).
        self._rewound: dict[int, int] = {}
        self._failures = 0
        self.dead_lettered = 0
        self._agents, self._users = StoredNames(), StoredNames()
        # The batch being written (its plan, or None when it failed) and its first offsets.
        self._pipeline = Pipeline[Plan | None]()
        self._in_flight_from: dict[int, int] = {}
        # Fetched while the batch in flight was written, to be written with the next fetch.
        self._gathered: _Batch | None = None
        # Users this process found erased: their events are dropped as they are decoded.
        self._erased: set[UUID] = set()

    async def handle(self, records: Sequence[Record], consumer: Consumer) -> None:
        """Start applying one batch once the previous one is done; see the class docstring."""
        if not records:
            return
        s = self._settings
        # Decoded before waiting, while the previous batch's statements run in PostgreSQL.
        # Only what the records change is kept, not the records (_Batch).
        batch = _Batch(
            stretches_of(records),
            changes_of(records, s.max_event_bytes, self._erased),
            len(records),
        )
        full = len(records) >= s.batch_max_records
        if self._gathered is not None:
            gathered, self._gathered = self._gathered, None
            if gathered.followed_by(batch):
                batch = gathered.then(batch)
            else:
                # The batch in flight rewound its partitions meanwhile (it failed, or is read
                # again): the gathered fetch is dropped, and its other partitions read again.
                again = firsts(gathered.stretches)
                self._seek(consumer, {p: o for p, o in again.items() if p not in batch.stretches})
        if (
            full
            and batch.fetches < s.batch_max_fetches
            and self._pipeline.writing
            and not self._caught_up(batch, consumer)
        ):
            # The previous batch is still being written and more records wait: this batch
            # takes the next fetch too, and is written once (docs/benchmarks.md).
            self._gathered = batch
            return
        if self._pipeline.busy:
            plan = await self._finish(consumer)
            if plan is None or plan.refetch:
                # It failed (and rewound), or is to be read again: so is this batch, fetched
                # before that; the batch in flight's positions come first.
                again = self._in_flight_from if plan is None else plan.refetch
                self._seek(consumer, {**firsts(batch.stretches), **again})
                return
        self._in_flight_from = firsts(batch.stretches)
        await self._pipeline.start(partial(self._apply, batch, consumer))
        if not full and self._caught_up(batch, consumer):
            # Nothing is waiting to be decoded meanwhile. Returning now would have the next
            # batch take the few records that arrived while this statement was sent, and wait
            # for this write anyway; once it is done, the next batch takes all that arrived,
            # and waits for no write (docs/benchmarks.md). Any rewind is done by then, so the
            # next batch is fetched from where it points.
            await self._finish(consumer)

    def _caught_up(self, batch: _Batch, consumer: Consumer) -> bool:
        """Whether the batch reaches the end of each of its partitions as last fetched."""
        topic, assigned = self._settings.topic, consumer.assignment()
        for partition, stretch in batch.stretches.items():
            tp = TopicPartition(topic, partition)
            if tp not in assigned:  # revoked meanwhile: nothing more to read there
                continue
            highwater = consumer.highwater(tp)
            if highwater is None or stretch.last + 1 < highwater:
                return False
        return True

    async def _finish(self, consumer: Consumer) -> Plan | None:
        """The plan of the batch in flight, once it is done; None when it failed, and then its
        partitions are rewound to its first records."""
        try:
            return await self._pipeline.finish()
        except Exception:  # after its commit (a seek): batches will check
            log.exception("finishing the previous batch failed; rewinding")
            self._seek(consumer, self._in_flight_from)
            return None

    async def settle(self) -> None:
        """Wait until the batch in flight has committed (or failed and rewound), and its
        offsets were committed to Kafka too (or given up on). A batch waiting for its next
        fetch is dropped: whoever reads its partitions next starts at their checkpoints (and a
        batch that starts past one is read again from it)."""
        self._gathered = None
        await self._pipeline.settle()
        await self._hints.flush()
        self._gathered = None  # gathered meanwhile, by a batch fetched before
        # Where the partitions are read from next is up to the next assignment (Kafka's
        # committed offsets, if the checkpoints cannot be read then): a gap noted before is
        # no evidence for what comes next.
        self._rewound.clear()

    async def _apply(
        self, batch: _Batch, consumer: Consumer, writing: asyncio.Event
    ) -> Plan | None:
        """Write one batch and commit; the plan, or None when it failed (and was rewound)."""
        try:
            with self._tracing.batch(batch.records) as span:
                plan = await self._write(batch, consumer, writing, span)
        except Exception:
            if self._metrics is not None:
                self._metrics.failed()
            self._agents.forget()
            self._users.forget()
            self._failures += 1
            delay = retry_delay(self._failures, self._settings.retry_max_seconds)
            log.exception(
                "batch failed (attempt %d); retrying in %.1fs",
                self._failures,
                delay,
                extra={"batch": _batch_name(batch.stretches)},
            )
            self._seek(consumer, firsts(batch.stretches))
            await asyncio.sleep(delay)
            return None
        if self._failures:
            log.info("recovered after %d failed attempts", self._failures)
            self._failures = 0
        self._seek(consumer, plan.refetch)
        for partition in plan.next_offsets:
            self._rewound.pop(partition, None)
        self._hints.give(consumer, plan.next_offsets)
        return plan

    async def _write(
        self, batch: _Batch, consumer: Consumer, writing: asyncio.Event, span: BatchSpan
    ) -> Plan:
        began = time.perf_counter()
        decoded = batch.changes
        async with self._store.transaction() as tx:
            stored = await tx.lock_checkpoints(batch.stretches)
            gone = {p for p, at in self._rewound.items() if stored.get(p) == at}
            plan = plan_batch(batch.stretches, stored, gone)
            # After the checkpoint lock, so an erasure either committed before this lookup or
            # waits for this batch's commit before it deletes (erasure.py).
            erased = frozenset() if plan.refetch else await tx.erased_among(decoded.users)
            written = None
            if not (plan.refetch or erased):
                written = await self._write_changes(tx, decoded, plan, writing, span)
        if written is None:  # nothing written, and what is noted of it only once committed
            return self._read_again(batch.stretches, plan, erased, consumer)
        agents, users = written
        self._agents.remember(agents)
        self._users.remember(users)
        self.dead_lettered += len(decoded.poison)
        if self._metrics is not None:
            seconds, dropped = time.perf_counter() - began, decoded.dropped.total()
            rows, offsets = decoded.rows.values(), plan.next_offsets
            self._metrics.applied(
                consumer, batch.records, decoded.poison, dropped, rows, seconds, offsets
            )
        return plan

    async def _write_changes(
        self,
        tx: Transaction,
        decoded: Changes,
        plan: Plan,
        writing: asyncio.Event,
        span: BatchSpan,
    ) -> tuple[dict[UUID, Name], dict[UUID, Name]]:
        """The batch's statements; the names written."""
        poison = decoded.poison
        span.decoded(decoded.traces, len(decoded.rows), len(poison))
        # Dead letters go out before the commit: at least once, never lost.
        dead = await self._dead_letters.send(poison) if poison else {}
        agents = self._agents.unwritten(decoded.agents)
        users = self._users.unwritten(decoded.users)
        await tx.write(agents, users, decoded.rows.values(), writing)
        if decoded.dropped:
            await tx.count_dropped(decoded.dropped)
        await tx.save_checkpoints(plan.next_offsets, dead)
        return agents, users

    def _read_again(
        self,
        stretches: Mapping[int, Stretch],
        plan: Plan,
        erased: frozenset[UUID],
        consumer: Consumer,
    ) -> Plan:
        """The plan of a batch to be read again (plan_batch, or users erased since this process
        last looked), with where to read each partition from."""
        if erased:
            self._erased |= erased
            log.info("%d users erased meanwhile: reading the batch again without them", len(erased))
            return Plan({}, firsts(stretches), {})
        if plan.gaps:  # perhaps commits were lost: what this process wrote is no evidence
            self._agents.forget()
            self._users.forget()
        refetch = dict(plan.refetch)
        for partition, position in plan.refetch.items():
            if partition in plan.gaps:
                log.warning(
                    "partition %d starts past checkpoint %d; rewinding", partition, position
                )
                self._rewound[partition] = position
            elif position != stretches[partition].first:
                refetch[partition] = self._behind(partition, position, consumer)
        return replace(plan, refetch=refetch)

    def _behind(self, partition: int, checkpoint: int, consumer: Consumer) -> int:
        """Where to read on from a partition fetched below its checkpoint: the checkpoint, or
        the partition's end where the checkpoint lies past it."""
        tp = TopicPartition(self._settings.topic, partition)
        end = consumer.highwater(tp) if tp in consumer.assignment() else None
        if end is not None and checkpoint > end:
            # Seeking past the end would have Kafka start the partition over, and this batch
            # would come back, endlessly.
            log.error(
                "partition %d's checkpoint %d lies past its end %d (a topic recreated, or "
                "records lost?): records below it count as applied; `replay` rebuilds the read "
                "model from what the topic holds",
                partition,
                checkpoint,
                end,
            )
            return end
        log.info(
            "partition %d fetched below its checkpoint %d; reading on from it",
            partition,
            checkpoint,
        )
        return checkpoint

    def _seek(self, consumer: Consumer, positions: dict[int, int]) -> None:
        assigned = consumer.assignment()
        for partition, offset in positions.items():
            tp = TopicPartition(self._settings.topic, partition)
            if tp in assigned:  # a revoked partition restarts at its checkpoint elsewhere
                consumer.seek(tp, offset)

    async def seek_to_checkpoints(self, consumer: Consumer, assigned: set[TopicPartition]) -> None:
        """Start each assigned partition at its checkpoint (an optimisation: see _apply)."""
        try:
            stored = await self._store.stored_checkpoints()
        except Exception as e:
            log.warning("could not read checkpoints on assignment (%s); batches will check", e)
            return
        if self._metrics is not None:
            self._metrics.assigned(consumer, stored)
        topic = self._settings.topic
        for tp in assigned:
            if tp.topic == topic and tp.partition in stored:
                consumer.seek(tp, stored[tp.partition])


@dataclass(slots=True)
class _Batch:
    """Records as read from Kafka: where they lie, and what they change once decoded and
    folded (not the records themselves)."""

    stretches: dict[int, Stretch]
    changes: Changes
    records: int
    fetches: int = 1

    def followed_by(self, later: _Batch) -> bool:
        """Whether ``later`` starts right after this batch in each partition they share."""
        return all(
            stretch.first == self.stretches[p].last + 1
            for p, stretch in later.stretches.items()
            if p in self.stretches
        )

    def then(self, later: _Batch) -> _Batch:
        """This batch and the one fetched after it, as one."""
        return _Batch(
            joined(self.stretches, later.stretches),
            combined(self.changes, later.changes),
            self.records + later.records,
            self.fetches + later.fetches,
        )


def _batch_name(stretches: Mapping[int, Stretch]) -> str:
    """Which records a batch holds, for its log lines: ``partition:first-last`` each."""
    return " ".join(f"{p}:{s.first}-{s.last}" for p, s in sorted(stretches.items()))
