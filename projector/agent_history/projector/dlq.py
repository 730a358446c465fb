"""The dead-letter topic for an operator: read it, pick records, and redrive them, each once.

A dead letter is named by its place in the dead-letter topic, ``PARTITION:OFFSET`` (just
``OFFSET`` while the topic has one partition, as `agent-history topics` creates it). Redrive
puts a record back on the event topic with its original key, value and headers (the ``dlq-*``
ones the projector added left out) and one header more, ``dlq-redriven-from``, and records it
in ``dlq_redriven`` in the transaction that waits for the broker: a second redrive skips it.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from agent_history.contract.events import (
    DLQ_HEADERS,
    DLQ_ORIGIN_OFFSET,
    DLQ_ORIGIN_PARTITION,
    DLQ_ORIGIN_TOPIC,
    DLQ_REASON,
    DLQ_REDRIVEN_FROM,
)
from agent_history.contract.settings import KafkaSettings
from agent_history.read_model.tables import dlq_redriven

Position = tuple[int, int]  # (partition, offset) in the dead-letter topic
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f]+")


@dataclass(frozen=True, slots=True)
class DeadLetter:
    partition: int
    offset: int
    timestamp: datetime
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]

    @property
    def position(self) -> str:
        return f"{self.partition}:{self.offset}"

    def header(self, name: str) -> str | None:
        """The last value of header ``name``, as text (the projector's come last)."""
        found = [value for key, value in self.headers if key == name and value is not None]
        return found[-1].decode(errors="replace") if found else None

    @property
    def reason(self) -> str:
        return self.header(DLQ_REASON) or "(no reason)"

    @property
    def origin(self) -> str:
        """Where the projector read it: ``topic[partition]@offset``."""
        topic, partition, offset = (
            self.header(h) for h in (DLQ_ORIGIN_TOPIC, DLQ_ORIGIN_PARTITION, DLQ_ORIGIN_OFFSET)
        )
        return f"{topic or '?'}[{partition or '?'}]@{offset or '?'}"

    @property
    def original_headers(self) -> list[tuple[str, bytes | None]]:
        """The headers the record had on the event topic."""
        dropped = {*DLQ_HEADERS, DLQ_REDRIVEN_FROM}
        return [(k, v) for k, v in self.headers if k not in dropped]

    @property
    def redriven_from(self) -> str | None:
        """The dead letter this one was redriven from, when it failed again after a redrive."""
        return self.header(DLQ_REDRIVEN_FROM)

    def preview(self, width: int = 60) -> str:
        """The start of the value on one line, control characters shown as a space."""
        if self.value is None:
            return "(no value)"
        text = _UNPRINTABLE.sub(" ", self.value[: width * 4].decode(errors="replace"))
        return text if len(text) <= width else text[: width - 1] + "…"


def parse_position(text: str) -> Position:
    """``PARTITION:OFFSET``, or ``OFFSET`` for partition 0; raises ValueError."""
    partition, _, offset = text.rpartition(":")
    try:
        parsed = (int(partition or 0), int(offset))
    except ValueError:
        raise ValueError(f"{text!r} is not PARTITION:OFFSET") from None
    if min(parsed) < 0:
        raise ValueError(f"{text!r}: partitions and offsets are not negative")
    return parsed


def matching(
    letters: Iterable[DeadLetter],
    reason: str | None = None,
    positions: Iterable[Position] = (),
) -> list[DeadLetter]:
    """Those whose reason contains ``reason`` (any case) and, if given, at ``positions``."""
    wanted = set(positions)
    return [
        letter
        for letter in letters
        if (reason is None or reason.lower() in letter.reason.lower())
        and (not wanted or (letter.partition, letter.offset) in wanted)
    ]


def to_redrive(
    letters: Iterable[DeadLetter], reason: str | None, positions: Iterable[Position]
) -> tuple[list[DeadLetter], list[DeadLetter]]:
    """The letters a redrive selects, and those it leaves out: the named ones, or else those
    whose reason matches but for letters that failed again after a redrive (a repeated redrive
    by reason would otherwise send them round for ever; naming one redrives it again)."""
    chosen = matching(letters, reason, positions)
    if positions:
        return chosen, []
    return [d for d in chosen if d.redriven_from is None], [d for d in chosen if d.redriven_from]


@dataclass(frozen=True, slots=True)
class Redrive:
    sent: list[DeadLetter]
    skipped: list[DeadLetter]  # redriven before


class DeadLetterQueue:
    """Reads the dead-letter topic and redrives from it; the clients are built per call."""

    def __init__(
        self,
        settings: KafkaSettings,
        engine: AsyncEngine,
        consumer: Callable[[], AIOKafkaConsumer],
        producer: Callable[[], AIOKafkaProducer],
    ) -> None:
        self._settings = settings
        self._engine = engine
        self._consumer = consumer
        self._producer = producer

    async def read(self, since: datetime | None = None) -> list[DeadLetter]:
        """Every dead letter there now (written at or after ``since``), oldest first."""
        topic = self._settings.dlq_topic
        consumer = self._consumer()
        await consumer.start()
        try:
            # The consumer's own metadata knows only topics it was told of: ask the cluster.
            cluster = await consumer._client.fetch_all_metadata()
            partitions = cluster.partitions_for_topic(topic)
            if not partitions:
                raise LookupError(f"the dead-letter topic {topic!r} does not exist")
            tps = [TopicPartition(topic, p) for p in sorted(partitions)]
            consumer.assign(tps)
            end = await consumer.end_offsets(tps)
            await consumer.seek_to_beginning(*tps)
            if since is not None:
                ms = int(since.timestamp() * 1000)
                for tp, found in (await consumer.offsets_for_times(dict.fromkeys(tps, ms))).items():
                    consumer.seek(tp, found.offset if found is not None else end[tp])
            letters: list[DeadLetter] = []
            while any([await consumer.position(tp) < end[tp] for tp in tps]):
                for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                    letters += [_letter(r) for r in records if r.offset < end[tp]]
        finally:
            await consumer.stop()
        return sorted(letters, key=lambda d: (d.timestamp, d.partition, d.offset))

    async def redrive(self, letters: list[DeadLetter]) -> Redrive:
        """Send each of ``letters`` not redriven before back to the event topic, once."""
        if not letters:
            return Redrive([], [])
        topic = self._settings.dlq_topic
        rows = [{"topic": topic, "partition": d.partition, "offset": d.offset} for d in letters]
        claim = (
            insert(dlq_redriven)
            .values(rows)
            .on_conflict_do_nothing()
            .returning(dlq_redriven.c.partition, dlq_redriven.c.offset)
        )
        # The claim's rows stay locked until the broker has every record: a concurrent redrive
        # of the same letters waits, then skips them; a failed send rolls the claim back.
        async with self._engine.begin() as conn:
            claimed = {(p, o) for p, o in await conn.execute(claim)}
            sent = [d for d in letters if (d.partition, d.offset) in claimed]
            await self._send(sent)
        return Redrive(sent, [d for d in letters if (d.partition, d.offset) not in claimed])

    async def _send(self, letters: list[DeadLetter]) -> None:
        producer = self._producer()
        await producer.start()
        try:
            acks = [
                await producer.send(
                    self._settings.topic,
                    key=d.key,
                    value=d.value,
                    headers=[*d.original_headers, (DLQ_REDRIVEN_FROM, d.position.encode())],
                )
                for d in letters
            ]
            await asyncio.gather(*acks)
        finally:
            await producer.stop()


def _letter(record: ConsumerRecord) -> DeadLetter:
    return DeadLetter(
        partition=record.partition,
        offset=record.offset,
        timestamp=datetime.fromtimestamp(record.timestamp / 1000, UTC),
        key=record.key,
        value=record.value,
        headers=tuple(record.headers),
    )
