"""The projector's batch pipeline: transactions in order, each overlapping the next decode,
full fetches gathered while a write is in flight, and every failure, gap or erasure found
rewinding the consumer, including the batch fetched meanwhile."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID, uuid4

import pytest
from aiokafka import TopicPartition

from agent_history.projector.consumer import Projector
from agent_history.projector.settings import ProjectorSettings

TOPIC = "t"


@dataclass(frozen=True)
class FakeRecord:
    partition: int
    offset: int
    value: bytes
    key: bytes | None = None
    topic: str = TOPIC
    headers: Sequence[tuple[str, bytes]] = ()


def started(partition: int, offset: int, user: UUID | None = None) -> FakeRecord:
    execution = str(uuid4())
    event = {
        "specversion": "1.0",
        "id": str(uuid4()),
        "source": "tests",
        "type": "ExecutionStarted",
        "subject": execution,
        "time": "2025-06-01T08:00:00Z",
        "data": {
            "execution_id": execution,
            "agent_id": str(uuid4()),
            "user_id": str(user or uuid4()),
            "input_data": {},
        },
    }
    return FakeRecord(partition, offset, json.dumps(event).encode())


def batch(**offsets: range) -> list[FakeRecord]:
    """Records by partition: batch(p0=range(0, 3), p1=range(5, 7))."""
    return [started(int(p[1:]), o) for p, span in offsets.items() for o in span]


@dataclass
class FakeStore:
    """Checkpoints and what each committed transaction wrote; can hold or fail a write."""

    checkpoints: dict[int, int] = field(default_factory=dict)
    log: list[str] = field(default_factory=list)
    committed: list[set[int]] = field(default_factory=list)  # partitions of each commit
    hold: asyncio.Event | None = None
    fail_next: bool = False
    fail_commit: bool = False
    erased: frozenset[UUID] = frozenset()
    dropped: Counter[UUID] = field(default_factory=Counter)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[FakeTransaction]:
        batch = FakeTransaction(self)
        self.log.append("begin")
        yield batch
        if self.fail_commit:
            self.fail_commit = False
            raise ConnectionError("the commit failed")
        self.checkpoints.update(batch.saved)
        self.committed.append(set(batch.saved))
        self.log.append("commit")

    async def stored_checkpoints(self) -> dict[int, int]:
        return dict(self.checkpoints)


class FakeTransaction:
    def __init__(self, store: FakeStore) -> None:
        self.store = store
        self.saved: dict[int, int] = {}

    async def lock_checkpoints(self, partitions: Iterable[int]) -> dict[int, int]:
        stored = self.store.checkpoints
        return {p: stored[p] for p in partitions if p in stored}

    async def erased_among(self, users: Iterable[UUID]) -> frozenset[UUID]:
        return self.store.erased & frozenset(users)

    async def count_dropped(self, dropped: Mapping[UUID, int]) -> None:
        self.store.dropped.update(dropped)

    async def write(self, agents: Any, users: Any, rows: Any, writing: asyncio.Event) -> None:
        writing.set()
        self.store.log.append(f"write {len(list(rows))}")
        if self.store.hold is not None:
            await self.store.hold.wait()
        if self.store.fail_next:
            self.store.fail_next = False
            raise ConnectionError("database went away")

    async def save_checkpoints(self, next_offsets: Mapping[int, int], dead: Any) -> None:
        self.saved.update(next_offsets)


class FakeConsumer:
    def __init__(self, partitions: Sequence[int]) -> None:
        self.assigned = {TopicPartition(TOPIC, p) for p in partitions}
        self.seeks: list[tuple[int, int]] = []
        self.commits: list[dict[int, int]] = []
        # Each partition's end as last fetched; unknown (a backlog, as far as a batch can
        # tell) unless a test sets it.
        self.ends: dict[int, int] = {}

    def assignment(self) -> set[TopicPartition]:
        return self.assigned

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append((tp.partition, offset))

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        self.commits.append({tp.partition: o for tp, o in offsets.items()})

    def highwater(self, tp: TopicPartition) -> int | None:
        assert tp in self.assigned, "aiokafka asserts the partition is assigned"
        return self.ends.get(tp.partition)


class NoDeadLetters:
    async def send(self, poison: list[Any]) -> Counter[int]:
        raise AssertionError("nothing here is poison")


@pytest.fixture
def db() -> FakeStore:
    return FakeStore()


def projector(db: FakeStore) -> Projector:
    # No backoff after a failed batch: these tests fail batches on purpose.
    settings = ProjectorSettings(topic=TOPIC, consumer_group="g", retry_max_seconds=0.0)
    return Projector(settings, db, NoDeadLetters())


async def test_a_batch_is_written_while_the_next_is_decoded_and_commits_first(
    db: FakeStore,
) -> None:
    p, kafka = projector(db), FakeConsumer([0, 1])
    db.hold = asyncio.Event()

    await p.handle(batch(p0=range(0, 3)), kafka)
    assert db.log == ["begin", "write 3"], "handle returns once the write is under way"
    second = asyncio.create_task(p.handle(batch(p0=range(3, 5), p1=range(0, 2)), kafka))
    await asyncio.sleep(0.01)
    assert db.log == ["begin", "write 3"], "the next transaction waits for the one in flight"

    db.hold.set()
    await second
    await p.settle()

    assert db.log == ["begin", "write 3", "commit", "begin", "write 4", "commit"]
    assert db.checkpoints == {0: 5, 1: 2}
    assert kafka.seeks == []


async def test_a_batch_that_reaches_the_end_commits_before_handle_returns(
    db: FakeStore,
) -> None:
    p, kafka = projector(db), FakeConsumer([0])
    kafka.ends = {0: 2}
    db.hold = asyncio.Event()

    first = asyncio.create_task(p.handle(batch(p0=range(0, 2)), kafka))
    await asyncio.sleep(0.01)
    assert db.log == ["begin", "write 2"]
    assert not first.done(), "caught up: the next batch is fetched after this one commits"
    settling = asyncio.create_task(p.settle())  # as a revocation would, meanwhile
    await asyncio.sleep(0.01)
    assert not settling.done(), "the batch is still in flight for settle"
    db.hold.set()
    await first
    await settling
    assert db.log == ["begin", "write 2", "commit"]

    kafka.ends = {0: 9}  # more to fetch: the write overlaps the next batch
    db.hold = asyncio.Event()
    behind = asyncio.create_task(p.handle(batch(p0=range(2, 5)), kafka))
    await asyncio.sleep(0.01)
    assert behind.done(), "behind the end, handle returns once its write is under way"
    assert db.log[-1] == "write 3"
    db.hold.set()
    await p.settle()
    assert db.checkpoints == {0: 5}
    assert kafka.commits[-1] == {0: 5}, "settle sends the checkpoints to Kafka too"


async def test_a_caught_up_batch_that_failed_has_rewound_before_the_next_fetch(
    db: FakeStore,
) -> None:
    p, kafka = projector(db), FakeConsumer([0])
    kafka.ends = {0: 2}
    db.fail_next = True

    await p.handle(batch(p0=range(0, 2)), kafka)
    assert kafka.seeks == [(0, 0)], "rewound and backed off before handle returned"
    await p.handle(batch(p0=range(0, 2)), kafka)  # so the next batch is its records again
    await p.settle()

    assert db.committed == [{0}], "applied at once, not dropped and fetched a third time"
    assert kafka.seeks == [(0, 0)]
    assert db.checkpoints == {0: 2}


async def test_a_failed_batch_rewinds_itself_and_the_batch_fetched_meanwhile(
    db: FakeStore,
) -> None:
    p, kafka = projector(db), FakeConsumer([0, 1])
    db.fail_next = True

    await p.handle(batch(p0=range(10, 13)), kafka)
    await p.handle(batch(p0=range(13, 15), p1=range(4, 6)), kafka)
    await p.settle()

    assert db.committed == [], "neither batch is applied"
    assert (0, 10) in kafka.seeks, "the failed batch is fetched again"
    assert kafka.seeks[-2:] == [(0, 10), (1, 4)], "and so is the next one, from its start"
    assert "begin" in db.log


async def test_a_gap_reads_the_batch_and_the_one_fetched_meanwhile_again(db: FakeStore) -> None:
    p, kafka = projector(db), FakeConsumer([0, 1])
    db.checkpoints = {0: 3, 1: 0}

    # Partition 0 starts past its checkpoint (3): none of the batch is applied ...
    await p.handle(batch(p0=range(7, 9), p1=range(0, 2)), kafka)
    # ... nor of the batch fetched before that took effect: both are read again.
    await p.handle(batch(p0=range(9, 11), p1=range(2, 4)), kafka)

    assert db.committed == [set()], "the first batch wrote nothing; the second did not begin"
    assert kafka.seeks == [(0, 3), (1, 0), (0, 3), (1, 0)]

    # Read again, partition 0 still starts at 7 (3-6 are gone from the log): carried on from
    # there.
    await p.handle(batch(p0=range(7, 11), p1=range(0, 4)), kafka)
    await p.settle()
    assert db.checkpoints == {0: 11, 1: 4}
    assert db.committed[-1] == {0, 1}


async def test_a_gap_counts_as_seen_only_once_its_transaction_committed(db: FakeStore) -> None:
    p, kafka = projector(db), FakeConsumer([0])
    db.checkpoints = {0: 3}
    kafka.ends = {0: 9}  # caught up: the next fetch comes after this batch is done
    db.fail_commit = True

    await p.handle(batch(p0=range(7, 9)), kafka)  # a gap, but the empty commit fails
    await p.handle(batch(p0=range(7, 9)), kafka)  # so this is the gap's first sighting again
    await p.settle()

    assert db.checkpoints == {0: 3}, "3-6 never read: not skipped"
    assert kafka.seeks == [(0, 7), (0, 3)]


async def test_a_checkpoint_past_the_partitions_end_reads_on_from_the_end(db: FakeStore) -> None:
    p, kafka = projector(db), FakeConsumer([0])
    db.checkpoints = {0: 9}
    kafka.ends = {0: 5}  # the topic holds less than the checkpoint says (recreated, say)

    await p.handle(batch(p0=range(0, 5)), kafka)
    await p.settle()

    # Seeking to 9 would have Kafka start the partition over, and this batch come back.
    assert kafka.seeks == [(0, 5)]
    assert db.checkpoints == {0: 9}


async def test_a_fetch_that_does_not_follow_the_gathered_one_replaces_it(db: FakeStore) -> None:
    p, kafka = gathering(db), FakeConsumer([0])
    db.hold = asyncio.Event()
    await p.handle(batch(p0=range(0, 2)), kafka)
    await p.handle(batch(p0=range(2, 4)), kafka)  # gathered
    # The same records again (the batch in flight rewound the partition, say), the last.
    kafka.ends = {0: 4}
    again = asyncio.create_task(p.handle(batch(p0=range(2, 4)), kafka))
    await asyncio.sleep(0.01)
    db.hold.set()
    await again
    await p.settle()

    assert db.log == ["begin", "write 2", "commit", "begin", "write 2", "commit"]
    assert db.checkpoints == {0: 4}


async def test_a_dropped_gathered_fetch_reads_again_the_partitions_it_alone_held(
    db: FakeStore,
) -> None:
    p, kafka = gathering(db), FakeConsumer([0, 2])
    db.checkpoints = {2: 500}
    kafka.ends = {2: 602}
    await p.handle(batch(p2=range(601, 602)), kafka)  # a gap: read again from 500
    assert kafka.seeks == [(2, 500)]
    kafka.ends = {}
    db.hold, db.fail_next = asyncio.Event(), True
    await p.handle(batch(p0=range(0, 2)), kafka)  # written, then fails
    await p.handle(batch(p0=range(2, 4), p2=range(500, 502)), kafka)  # gathered
    db.hold.set()
    # The failed batch rewound partition 0: this fetch does not follow the gathered one.
    await p.handle(batch(p0=range(0, 2)), kafka)
    await p.settle()

    # Dropped, the gathered fetch has partition 2 read again from its first record (the plan
    # then finds where that partition stands), not from past it.
    assert kafka.seeks[:2] == [(2, 500), (2, 500)]
    assert db.checkpoints == {2: 500}


async def test_a_gap_noted_before_a_revocation_is_not_accepted_after_it(db: FakeStore) -> None:
    p, kafka = projector(db), FakeConsumer([0])
    db.checkpoints = {0: 3}
    kafka.ends = {0: 9}
    await p.handle(batch(p0=range(7, 9)), kafka)  # a gap: read again from 3
    await p.settle()  # revoked, and assigned again where Kafka's committed offset says
    await p.handle(batch(p0=range(7, 9)), kafka)
    await p.settle()

    assert db.checkpoints == {0: 3}, "a gap seen anew, not taken as confirmed"
    assert kafka.seeks == [(0, 3), (0, 3)]


async def test_a_partition_revoked_meanwhile_is_not_asked_for_its_end(db: FakeStore) -> None:
    p, kafka = gathering(db), FakeConsumer([0, 1])
    db.hold = asyncio.Event()
    await p.handle(batch(p0=range(0, 2)), kafka)
    await p.handle(batch(p0=range(2, 3), p1=range(0, 1)), kafka)  # full: gathered
    kafka.assigned = {TopicPartition(TOPIC, 0)}  # partition 1 revoked
    kafka.ends = {0: 4}  # caught up on partition 0
    last = asyncio.create_task(p.handle(batch(p0=range(3, 4)), kafka))
    await asyncio.sleep(0.01)
    db.hold.set()
    await last
    await p.settle()

    assert db.log == ["begin", "write 2", "commit", "begin", "write 3", "commit"]


async def test_settle_drops_a_fetch_gathered_while_it_waits(db: FakeStore) -> None:
    p, kafka = gathering(db), FakeConsumer([0])
    db.hold = asyncio.Event()
    await p.handle(batch(p0=range(0, 2)), kafka)
    settling = asyncio.create_task(p.settle())  # a revocation, while ...
    await asyncio.sleep(0.01)
    await p.handle(batch(p0=range(2, 4)), kafka)  # ... a fetch from before it is handled
    db.hold.set()
    await settling

    await p.handle(batch(p0=range(4, 6)), kafka)  # the next owner's first fetch would be 2-3
    await p.settle()
    assert db.committed == [{0}, set()], "2-3 dropped, so 4-5 starts past the checkpoint"
    assert db.checkpoints == {0: 2}


async def test_a_batch_with_records_already_applied_is_read_again_from_the_checkpoint(
    db: FakeStore,
) -> None:
    p, kafka = projector(db), FakeConsumer([0])
    db.checkpoints = {0: 5}
    kafka.ends = {0: 8}  # caught up: the next fetch comes after this batch is done

    await p.handle(batch(p0=range(3, 8)), kafka)
    await p.settle()
    assert (db.committed, kafka.seeks) == ([set()], [(0, 5)])

    await p.handle(batch(p0=range(5, 8)), kafka)
    await p.settle()
    assert db.log[-3:] == ["begin", "write 3", "commit"]
    assert db.checkpoints == {0: 8}


def gathering(db: FakeStore) -> Projector:
    """A projector whose fetches are full at 2 records (and a batch at most 2 fetches)."""
    settings = ProjectorSettings(
        topic=TOPIC, consumer_group="g", retry_max_seconds=0.0, batch_max_records=2
    )
    return Projector(settings, db, NoDeadLetters())


async def test_a_full_fetch_decoded_during_a_write_is_written_with_the_next_one(
    db: FakeStore,
) -> None:
    p, kafka = gathering(db), FakeConsumer([0])
    db.hold = asyncio.Event()

    await p.handle(batch(p0=range(0, 2)), kafka)
    await p.handle(batch(p0=range(2, 4)), kafka)
    assert db.log == ["begin", "write 2"], "the second fetch waits for the third"
    third = asyncio.create_task(p.handle(batch(p0=range(4, 6)), kafka))
    await asyncio.sleep(0.01)
    assert not third.done(), "two fetches make a batch: it waits for the write in flight"
    db.hold.set()
    await third
    await p.settle()

    assert db.log == ["begin", "write 2", "commit", "begin", "write 4", "commit"]
    assert db.checkpoints == {0: 6}
    assert kafka.seeks == []


@pytest.mark.parametrize("why", ["not full", "caught up", "written already"])
async def test_a_fetch_is_written_on_its_own(why: str, db: FakeStore) -> None:
    p, kafka = gathering(db), FakeConsumer([0])
    db.hold = asyncio.Event()
    await p.handle(batch(p0=range(0, 2)), kafka)
    if why == "written already":
        db.hold.set()
        await asyncio.sleep(0.01)
    if why == "caught up":
        kafka.ends = {0: 4}
    second = asyncio.create_task(p.handle(batch(p0=range(2, 3 if why == "not full" else 4)), kafka))
    await asyncio.sleep(0.01)
    db.hold.set()
    await second
    await p.settle()

    assert db.committed == [{0}, {0}]
    assert db.log.count("begin") == 2


async def test_settle_drops_a_fetch_waiting_for_the_next_one(db: FakeStore) -> None:
    p, kafka = gathering(db), FakeConsumer([0])
    db.hold = asyncio.Event()
    await p.handle(batch(p0=range(0, 2)), kafka)
    await p.handle(batch(p0=range(2, 4)), kafka)

    db.hold.set()
    await p.settle()  # as on a revocation: the partitions' next reader starts at 2
    assert db.checkpoints == {0: 2}

    await p.handle(batch(p0=range(4, 6)), kafka)  # past the checkpoint: read again from it
    await p.settle()
    assert db.checkpoints == {0: 2}
    assert kafka.seeks == [(0, 2)]


async def test_settle_waits_for_the_batch_in_flight(db: FakeStore) -> None:
    p, kafka = projector(db), FakeConsumer([0])
    db.hold = asyncio.Event()
    await p.handle(batch(p0=range(0, 2)), kafka)

    settling = asyncio.create_task(p.settle())
    await asyncio.sleep(0.01)
    assert not settling.done()
    db.hold.set()
    await settling

    assert db.checkpoints == {0: 2}


class StuckConsumer(FakeConsumer):
    """A consumer being stopped under the batch: its offset commit never returns."""

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        await asyncio.Event().wait()


async def test_a_commit_hint_that_never_returns_does_not_hold_up_settle(db: FakeStore) -> None:
    settings = ProjectorSettings(topic=TOPIC, consumer_group="g", retry_max_seconds=0.0)
    p = Projector(settings, db, NoDeadLetters(), commit_hint_timeout=0.05)

    await p.handle(batch(p0=range(0, 2)), StuckConsumer([0]))
    await asyncio.wait_for(p.settle(), timeout=5)

    assert db.checkpoints == {0: 2}, "the batch committed; only the hint was given up"


async def test_events_of_an_erased_user_are_dropped_counted_and_passed(db: FakeStore) -> None:
    p, kafka = projector(db), FakeConsumer([0])
    erased, kept = uuid4(), uuid4()
    db.erased = frozenset({erased})

    records = [started(0, 0, erased), started(0, 1, kept), started(0, 2, erased)]
    kafka.ends = {0: 3}  # caught up: the next fetch comes after this batch is done
    await p.handle(records, kafka)
    await p.settle()
    assert db.log == ["begin", "commit"], "decoded before the erasure was known: nothing written"
    assert kafka.seeks == [(0, 0)], "read again"

    await p.handle(records, kafka)
    await p.settle()
    assert db.log[2:] == ["begin", "write 1", "commit"], "only the other user's row is written"
    assert db.dropped == {erased: 2}
    assert db.checkpoints == {0: 3}, "the dropped events are applied: the projection moves on"

    kafka.ends = {0: 5}
    await p.handle([started(0, 3, erased), started(0, 4, kept)], kafka)
    await p.settle()
    assert db.log[5:] == ["begin", "write 1", "commit"], "known from now on: dropped at once"
    assert db.dropped == {erased: 3}
