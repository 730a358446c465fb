"""Kafka commit hints: off the batches' path, at most one commit an interval, the newest."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping

from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError

from agent_history.projector.hints import CommitHints

TOPIC = "t"


class RecordingConsumer:
    def __init__(self, partitions: range = range(4)) -> None:
        self.assigned = {TopicPartition(TOPIC, p) for p in partitions}
        self.commits: list[dict[int, int]] = []
        self.fail: BaseException | None = None
        self.stuck = False

    def assignment(self) -> set[TopicPartition]:
        return self.assigned

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        self.commits.append({tp.partition: o for tp, o in offsets.items()})
        if self.stuck:
            await asyncio.Event().wait()
        if self.fail is not None:
            raise self.fail


async def until(condition: Callable[[], bool], within: float = 5.0) -> float:
    """Seconds until ``condition`` held (polled); fails after ``within``."""
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < within, "condition not reached"
        await asyncio.sleep(0.005)
    return time.monotonic() - start


async def test_the_first_hint_goes_at_once_and_the_next_after_the_interval() -> None:
    hints, kafka = CommitHints(TOPIC, timeout=1.0, interval=0.5), RecordingConsumer()

    hints.give(kafka, {0: 5})  # type: ignore[arg-type]
    await until(lambda: kafka.commits == [{0: 5}], within=0.4)

    hints.give(kafka, {0: 7, 1: 3})  # type: ignore[arg-type]
    hints.give(kafka, {0: 9})  # type: ignore[arg-type]
    waited = await until(lambda: len(kafka.commits) == 2)
    assert waited > 0.2, "not before the interval is (mostly) over"
    assert kafka.commits[1] == {0: 9, 1: 3}, "one commit, each partition's newest offset"
    await hints.flush()


async def test_flush_sends_what_is_left_at_once_even_when_given_meanwhile() -> None:
    hints, kafka = CommitHints(TOPIC, timeout=1.0, interval=60.0), RecordingConsumer()
    hints.give(kafka, {0: 5})  # type: ignore[arg-type]
    await until(lambda: len(kafka.commits) == 1)
    hints.give(kafka, {0: 8})  # type: ignore[arg-type]

    flushing = asyncio.create_task(hints.flush())
    await asyncio.sleep(0)
    hints.give(kafka, {1: 2})  # type: ignore[arg-type]
    await asyncio.wait_for(flushing, timeout=1.0)

    assert {0: 8} in kafka.commits[1:] or {0: 8, 1: 2} in kafka.commits[1:]
    assert sum(c.get(1) == 2 for c in kafka.commits) == 1, "what came during the flush too"
    await asyncio.wait_for(hints.flush(), timeout=1.0)  # nothing left: returns at once


async def test_revoked_partitions_are_left_out_of_the_commit() -> None:
    hints, kafka = CommitHints(TOPIC, timeout=1.0, interval=0.0), RecordingConsumer(range(2))
    hints.give(kafka, {0: 5, 3: 9})  # type: ignore[arg-type]
    await hints.flush()
    hints.give(kafka, {3: 10})  # type: ignore[arg-type]
    await hints.flush()
    assert kafka.commits == [{0: 5}], "Kafka would refuse all of it for partition 3"


async def test_a_failed_or_stuck_commit_is_given_up_and_the_next_one_still_sent() -> None:
    hints, kafka = CommitHints(TOPIC, timeout=0.05, interval=0.0), RecordingConsumer()
    kafka.fail = CommitFailedError("rebalanced")
    hints.give(kafka, {0: 5})  # type: ignore[arg-type]
    await hints.flush()
    kafka.fail = RuntimeError("not a Kafka error")
    hints.give(kafka, {0: 6})  # type: ignore[arg-type]
    await hints.flush()
    kafka.fail, kafka.stuck = None, True
    hints.give(kafka, {0: 7})  # type: ignore[arg-type]
    await asyncio.wait_for(hints.flush(), timeout=1.0)
    kafka.stuck = False
    hints.give(kafka, {0: 8})  # type: ignore[arg-type]
    await hints.flush()

    assert kafka.commits == [{0: 5}, {0: 6}, {0: 7}, {0: 8}]
