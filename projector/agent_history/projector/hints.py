"""Kafka's committed offsets, moved up to the stored checkpoints off the batches' path.

They are only a hint (checkpoints.py holds the truth: an assigned partition starts at its
checkpoint), for the next owner's first fetch and for the lag that Kafka's tools show. A
commit costs this process a round trip to the group coordinator and the CPU of aiokafka's
request, which a batch under a steady load (a few dozen records) felt: committing after each
batch held up the next, and so what the API shows (docs/benchmarks.md, "freshness"). So a
batch hands its offsets over and goes on, and they are committed at most once a second, the
newest of each partition; ``flush`` sends what is left at once and waits for it (the
projector flushes when its partitions are revoked; once its consumer has stopped, at shutdown,
Kafka may not take what is left, and the next owner starts at the checkpoints anyway).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from agent_history.projector.ports import Consumer

log = logging.getLogger(__name__)

# Kafka's own auto-commit waits 5 s between commits; the lag its tools show may be a second old.
COMMIT_INTERVAL = 1.0


class CommitHints:
    """One projector's offset commits: the newest offsets given, at most one commit an
    interval, one at a time."""

    def __init__(self, topic: str, timeout: float, interval: float = COMMIT_INTERVAL) -> None:
        self._topic = topic
        self._timeout = timeout
        self._interval = interval
        self._hurry = asyncio.Event()  # flush: no more waiting between commits
        self._pending: dict[int, int] = {}  # partition -> next offset, not yet committed
        self._consumer: Consumer | None = None
        self._sending: asyncio.Task[None] | None = None

    def give(self, consumer: Consumer, offsets: dict[int, int]) -> None:
        """Commit these offsets soon; a later call's offsets replace them, partition by
        partition."""
        if not offsets:
            return
        self._pending.update(offsets)
        self._consumer = consumer
        if self._sending is None or self._sending.done():
            self._sending = asyncio.create_task(self._send())

    async def flush(self) -> None:
        """Commit every offset given so far now; return once each was committed or given up
        on."""
        self._hurry.set()
        try:
            while self._sending is not None and not self._sending.done():
                await asyncio.wait([self._sending])
        finally:
            self._hurry.clear()

    async def _send(self) -> None:
        while self._pending and (consumer := self._consumer) is not None:
            offsets, self._pending = self._pending, {}
            # Those of partitions since revoked are their new owner's (Kafka would refuse the
            # whole commit for one of them), and a stopped consumer has none.
            assigned = consumer.assignment()
            tps = {TopicPartition(self._topic, p): o for p, o in offsets.items()}
            tps = {tp: o for tp, o in tps.items() if tp in assigned}
            if not tps:
                continue
            try:
                # Bounded: a consumer that is being stopped can wait for its coordinator
                # forever, and shutting down waits for this (Projector.settle).
                await asyncio.wait_for(consumer.commit(tps), self._timeout)
            except (KafkaError, TimeoutError) as e:  # the checkpoint table still has the truth
                log.info("offset commit skipped: %r", e)
            except Exception:  # a hint's failure must not end the projector either
                log.warning("offset commit failed", exc_info=True)
            # The offsets given meanwhile wait for the next one.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._hurry.wait(), self._interval)
