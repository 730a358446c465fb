"""A realistic backlog of execution events, generated fast and published fast.

Executions arrive at a steady simulated rate; each is Queued, Started after a short wait and
ends (completed 80 %, failed 15 %, cancelled 5 %) after a few seconds, so one execution's
events lie thousands of records apart in the log, as they do in production. 5 % of the
executions also get a second, conflicting terminal event (a cancel racing the end), and 5 % of
all events are delivered twice (same event id). Records are ordered by event time, keyed by
execution id and partitioned like Kafka's default partitioner.
"""

from __future__ import annotations

import asyncio
import gc
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2
from aiokafka.producer.message_accumulator import BatchBuilder

from agent_history.contract.events import CLOUDEVENTS_JSON, CONTENT_TYPE_HEADER

HEADERS = [(CONTENT_TYPE_HEADER, CLOUDEVENTS_JSON.encode())]
EXECUTIONS_PER_SECOND = 1000.0  # simulated arrival rate: sets how far apart related events lie
DUPLICATE_SHARE = 0.05
RACING_TERMINAL_SHARE = 0.05
_BASE = datetime(2025, 6, 1, tzinfo=UTC).timestamp()
_PROSE = (
    "Summarise the quarterly report and list the three largest risks with owners, dates and "
    "mitigations; then draft an email to the team that explains the plan in plain words, "
    "with a table of the open questions, the decisions already taken and who takes the next "
    "step. Keep it short, cite the sources you used and flag anything you are unsure about. "
)


@dataclass(frozen=True, slots=True)
class Record:
    """The parts of a ConsumerRecord the projector reads: a record handed over without Kafka."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]]


@dataclass(slots=True)
class Workload:
    """Records in publish order: (partition, key, value); what the projection must end with."""

    records: list[tuple[int, bytes, bytes]] = field(default_factory=list)
    executions: int = 0
    statuses: Counter[str] = field(default_factory=Counter)

    def handed_over(self, topic: str = "bench") -> list[Record]:
        """The records as the projector reads them, handed over without Kafka (offsets count
        through the whole workload)."""
        return [
            Record(topic, part, offset, key, value, HEADERS)
            for offset, (part, key, value) in enumerate(self.records)
        ]


def partition_of(key: bytes, partitions: int) -> int:
    """Kafka's default partitioner for keyed records (murmur2)."""
    hashed: int = murmur2(key)
    return (hashed & 0x7FFFFFFF) % partitions


def _text(rng: random.Random, length: int) -> str:
    start = rng.randrange(len(_PROSE) - length)
    return _PROSE[start : start + length]


def _uuid(rng: random.Random) -> str:
    return str(UUID(int=rng.getrandbits(128), version=4))


def _stamp(t: float) -> str:
    return datetime.fromtimestamp(_BASE + t, UTC).isoformat(timespec="microseconds")


def generate(events: int, partitions: int, seed: int = 7) -> Workload:
    """At least ``events`` records for whole executions, with duplicates and races."""
    gc.disable()  # millions of long-lived tuples: collections would only rescan them
    try:
        return _generate(events, partitions, seed)
    finally:
        gc.enable()


def _generate(events: int, partitions: int, seed: int) -> Workload:
    rng = random.Random(seed)
    prompts = [_text(rng, 160) for _ in range(256)]
    answers = [_text(rng, 220) for _ in range(256)]
    agents = [(_uuid(rng), f"Agent {i}") for i in range(200)]
    users = [(_uuid(rng), f"user{i}@example.com") for i in range(2000)]
    timed: list[tuple[float, int, bytes, bytes]] = []
    work = Workload()
    t = 0.0
    while len(timed) < events:
        t += rng.expovariate(EXECUTIONS_PER_SECOND)
        eid = _uuid(rng)
        key = eid.encode()
        part = partition_of(key, partitions)
        (agent, agent_name), (user, user_name) = rng.choice(agents), rng.choice(users)
        ids = {"execution_id": eid, "agent_id": agent, "user_id": user}
        request = {
            **ids,
            "input_data": {
                "prompt": rng.choice(prompts),
                "model": "gpt-large",
                "temperature": round(rng.random(), 2),
                "max_tokens": 1024,
            },
            "agent_name": agent_name,
            "user_name": user_name,
        }
        started = t + rng.expovariate(5.0)
        ended = started + rng.lognormvariate(0.7, 0.8)
        roll = rng.random()
        if roll < 0.80:
            end = ("ExecutionCompleted", {**ids, "output_data": {"answer": rng.choice(answers)}})
        elif roll < 0.95:
            end = ("ExecutionFailed", {**ids, "error_message": "RateLimitError: quota exceeded"})
        else:
            end = ("ExecutionCancelled", {**ids, "reason": "cancelled by the user"})
        plan = [
            (t, "ExecutionQueued", request),
            (started, "ExecutionStarted", request),
            (ended, *end),
        ]
        if rng.random() < RACING_TERMINAL_SHARE:
            plan.append((ended + rng.random(), "ExecutionCancelled", {**ids, "reason": "late"}))
        work.executions += 1
        work.statuses[_winner(plan)] += 1
        for at, kind, data in plan:
            value = orjson.dumps(
                {
                    "specversion": "1.0",
                    "id": _uuid(rng),
                    "source": "urn:worker:bench",
                    "type": kind,
                    "subject": eid,
                    "time": _stamp(at),
                    "datacontenttype": "application/json",
                    "data": data,
                }
            )
            timed.append((at, part, key, value))
            if rng.random() < DUPLICATE_SHARE:
                timed.append((at + rng.uniform(0.1, 2.0), part, key, value))
    timed.sort(key=lambda r: r[0])
    work.records = [(part, key, value) for _, part, key, value in timed]
    return work


def _winner(plan: list[tuple[float, str, dict[str, Any]]]) -> str:
    terminal = min((at, kind) for at, kind, _ in plan if kind not in _OPEN)
    return _STATUS[terminal[1]]


_OPEN = {"ExecutionQueued", "ExecutionStarted"}
_STATUS = {
    "ExecutionCompleted": "completed",
    "ExecutionFailed": "failed",
    "ExecutionCancelled": "cancelled",
}


async def publish(bootstrap: str, topic: str, records: list[tuple[int, bytes, bytes]]) -> None:
    """Publish in order per partition, in large batches, a bounded number in flight."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks=1, linger_ms=20, max_batch_size=1 << 20
    )
    await producer.start()
    try:
        in_flight: list[asyncio.Future[object]] = []
        batches: dict[int, BatchBuilder] = {}
        for part, key, value in records:
            batch = batches.get(part) or batches.setdefault(part, producer.create_batch())
            if batch.append(key=key, value=value, timestamp=None, headers=HEADERS) is None:
                batch.close()
                in_flight.append(await producer.send_batch(batch, topic, partition=part))
                batches[part] = batch = producer.create_batch()
                batch.append(key=key, value=value, timestamp=None, headers=HEADERS)
                if len(in_flight) >= 24:
                    await asyncio.gather(*in_flight)
                    in_flight.clear()
        for part, batch in batches.items():
            batch.close()
            in_flight.append(await producer.send_batch(batch, topic, partition=part))
        await asyncio.gather(*in_flight)
    finally:
        await producer.stop()
