"""The projector: applies each batch of records in one transaction (subscriber.py feeds it).

Where the projection stands is the checkpoint row of each partition, written in the same
transaction as the rows. Every batch re-reads (and locks) those rows first, so records already
applied are dropped and a gap is never skipped, whatever Kafka's committed offsets say. The
Kafka commit comes after the database commit and is only a hint for the next assignment.
Transactions run one at a time, in order, but each overlaps the decoding of the next batch
(Projector, on pipeline.Pipeline, which replay uses too): that keeps both this process and
PostgreSQL busy on a backlog. The Kafka commit does not hold up the next batch (hints.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from functools import partial

from aiokafka import TopicPartition

from agent_history.projector.core.changes import Changes, changes_of
from agent_history.projector.core.decode import Record
from agent_history.projector.core.names import StoredNames
from agent_history.projector.core.plan import Plan, plan_batch
from agent_history.projector.hints import CommitHints
from agent_history.projector.pipeline import Pipeline
from agent_history.projector.ports import BatchObserver, Consumer, DeadLetterSink, Store
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
    next. The transactions still run one after the other, in order. A batch that fails rewinds
    the consumer to its first records and backs off; the next batch, fetched before that,
    is dropped and rewound too, and so are records of partitions rewound for a gap. A batch
    that reaches the end of its partitions (no backlog) is waited for, so the next one is
    fetched after it.
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

    async def handle(self, records: Sequence[Record], consumer: Consumer) -> None:
        """Start applying one batch once the previous one is done; see the class docstring."""
        if not records:
            return
        # Decoded before waiting, while the previous batch's statements run in PostgreSQL.
        decoded: Changes | None = changes_of(records, self._settings.max_event_bytes)
        if self._pipeline.busy:
            plan = await self._finish(consumer)
            if plan is None:  # it failed, rewound its partitions and waited out the backoff
                self._seek(consumer, {**_first_offsets(records), **self._in_flight_from})
                return
            if plan.rewind:  # these partitions restart at their checkpoints: drop and rewind
                self._seek(consumer, plan.rewind)
                records = [r for r in records if r.partition not in plan.rewind]
                decoded = None
        if records:
            self._in_flight_from = _first_offsets(records)
            await self._pipeline.start(partial(self._apply, records, decoded, consumer))
            if self._caught_up(records, consumer):
                # Nothing is waiting to be decoded meanwhile. Returning now would have the
                # next batch take the few records that arrived while this statement was sent,
                # and wait for this write anyway; once it is done, the next batch takes all
                # that arrived, and waits for no write (docs/benchmarks.md). Any rewind is done
                # by then, so the next batch is fetched from where it points.
                await self._finish(consumer)

    def _caught_up(self, records: Sequence[Record], consumer: Consumer) -> bool:
        """Whether this batch reaches the end of each of its partitions as last fetched (a
        full batch never counts: more may be buffered)."""
        if len(records) >= self._settings.batch_max_records:
            return False
        ends = {r.partition: r.offset + 1 for r in records}  # offsets ascend in a partition
        topic = self._settings.topic
        for partition, end in ends.items():
            highwater = consumer.highwater(TopicPartition(topic, partition))
            if highwater is None or end < highwater:
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
        offsets were committed to Kafka too (or given up on)."""
        await self._pipeline.settle()
        await self._hints.flush()

    async def _apply(
        self,
        records: Sequence[Record],
        decoded: Changes | None,
        consumer: Consumer,
        writing: asyncio.Event,
    ) -> Plan | None:
        """Write one batch and commit; the plan, or None when it failed (and was rewound)."""
        try:
            with self._tracing.batch(len(records)) as span:
                plan = await self._write(records, decoded, consumer, writing, span)
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
                extra={"batch": _batch_name(records)},
            )
            self._seek(consumer, _first_offsets(records))
            await asyncio.sleep(delay)
            return None
        if self._failures:
            log.info("recovered after %d failed attempts", self._failures)
            self._failures = 0
        self._seek(consumer, plan.rewind)
        for partition in plan.next_offsets:
            self._rewound.pop(partition, None)
        self._hints.give(consumer, plan.next_offsets)
        return plan

    async def _write(
        self,
        records: Sequence[Record],
        decoded: Changes | None,
        consumer: Consumer,
        writing: asyncio.Event,
        span: BatchSpan,
    ) -> Plan:
        s = self._settings
        began = time.perf_counter()
        partitions = {r.partition for r in records}
        async with self._store.transaction() as batch:
            stored = await batch.lock_checkpoints(partitions)
            gone = {p for p, at in self._rewound.items() if stored.get(p) == at}
            plan = plan_batch(records, stored, gone)
            if decoded is None or len(plan.fresh) != len(records):
                decoded = changes_of(plan.fresh, s.max_event_bytes)
            # After the checkpoint lock, so an erasure either committed before this lookup or
            # waits for this batch's commit before it deletes (erasure.py).
            erased = await batch.erased_among(decoded.users)
            if erased:
                decoded = changes_of(plan.fresh, s.max_event_bytes, erased)
            poison = decoded.poison
            span.decoded(decoded.traces, len(decoded.rows), len(poison))
            # Dead letters go out before the commit: at least once, never lost.
            dead = await self._dead_letters.send(poison) if poison else {}
            agents = self._agents.unwritten(decoded.agents)
            users = self._users.unwritten(decoded.users)
            await batch.write(agents, users, decoded.rows.values(), writing)
            if decoded.dropped:
                await batch.count_dropped(decoded.dropped)
            await batch.save_checkpoints(plan.next_offsets, dead)
        self._agents.remember(agents)
        self._users.remember(users)
        if plan.rewind:  # perhaps commits were lost: what this process wrote is no evidence
            self._agents.forget()
            self._users.forget()
        for partition, position in plan.rewind.items():
            log.warning("partition %d starts past checkpoint %d; rewinding", partition, position)
            self._rewound[partition] = position
        self.dead_lettered += len(poison)
        if self._metrics is not None:
            seconds, dropped = time.perf_counter() - began, decoded.dropped.total()
            fresh, rows, offsets = len(plan.fresh), decoded.rows.values(), plan.next_offsets
            self._metrics.applied(consumer, fresh, poison, dropped, rows, seconds, offsets)
        return plan

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


def _first_offsets(records: Sequence[Record]) -> dict[int, int]:
    """Each partition's first offset in the batch, partitions in the order they first appear.

    That of its first record, as offsets ascend within a partition (plan_batch relies on that
    too): walked backwards, each partition's first record is the last one written.
    """
    firsts = {r.partition: r.offset for r in reversed(records)}
    return {p: firsts[p] for p in dict.fromkeys(r.partition for r in records)}


def _batch_name(records: Sequence[Record]) -> str:
    """Which records a batch holds, for its log lines: ``partition:first-last`` each."""
    spans: dict[int, tuple[int, int]] = {}
    for r in records:
        first, last = spans.get(r.partition, (r.offset, r.offset))
        spans[r.partition] = (min(first, r.offset), max(last, r.offset))
    return " ".join(f"{p}:{first}-{last}" for p, (first, last) in sorted(spans.items()))
