"""Kafka commit hints: off the batches' path, at most one commit an interval, the newest."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError

from agent_history.projector.hints import CommitHints

TOPIC = "t"


class RecordingConsumer:
    def __init__(self, fail: BaseException | None = None) -> None:
        self.commits: list[dict[int, int]] = []
        self.fail = fail

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        self.commits.append({tp.partition: o for tp, o in offsets.items()})
        if self.fail is not None:
            raise self.fail


async def test_the_first_hint_is_sent_at_once_and_later_ones_wait_for_the_interval() -> None:
    hints, kafka = CommitHints(TOPIC, timeout=1.0, interval=0.2), RecordingConsumer()

    hints.give(kafka, {0: 5})  # type: ignore[arg-type]
    await asyncio.sleep(0.02)
    assert kafka.commits == [{0: 5}]

    hints.give(kafka, {0: 7, 1: 3})  # type: ignore[arg-type]
    hints.give(kafka, {0: 9})  # type: ignore[arg-type]
    await asyncio.sleep(0.05)
    assert kafka.commits == [{0: 5}], "within the interval nothing more is sent"
    await asyncio.sleep(0.25)
    assert kafka.commits == [{0: 5}, {0: 9, 1: 3}], "then one commit, each partition's newest"


async def test_flush_sends_what_is_left_at_once() -> None:
    hints, kafka = CommitHints(TOPIC, timeout=1.0, interval=60.0), RecordingConsumer()
    hints.give(kafka, {0: 5})  # type: ignore[arg-type]
    await asyncio.sleep(0.02)
    hints.give(kafka, {0: 8})  # type: ignore[arg-type]

    await asyncio.wait_for(hints.flush(), timeout=1.0)

    assert kafka.commits == [{0: 5}, {0: 8}]
    await asyncio.wait_for(hints.flush(), timeout=1.0)  # nothing left: returns at once


async def test_a_failed_or_stuck_commit_is_given_up_and_the_next_one_still_sent() -> None:
    failing = RecordingConsumer(fail=CommitFailedError("rebalanced"))
    hints = CommitHints(TOPIC, timeout=1.0, interval=0.0)
    hints.give(failing, {0: 5})  # type: ignore[arg-type]
    await hints.flush()
    failing.fail = None
    hints.give(failing, {0: 6})  # type: ignore[arg-type]
    await hints.flush()
    assert failing.commits == [{0: 5}, {0: 6}]

    class Stuck(RecordingConsumer):
        async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
            await asyncio.Event().wait()

    stuck = CommitHints(TOPIC, timeout=0.05, interval=60.0)
    stuck.give(Stuck(), {0: 1})  # type: ignore[arg-type]
    await asyncio.wait_for(stuck.flush(), timeout=1.0)
