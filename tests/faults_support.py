"""Fault injection against the real services, shared by the fault and scale-out tests and by
bench/soak.py: a stream of executions (duplicates, order shuffled), the projector as an OS
process to SIGKILL, the fault scenario itself, and the reference the table must equal.

The reference is ``projector.core.fold.fold_all`` over the produced events, computed here in
memory: whatever happened to the processes, the table must be exactly that fold.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Literal
from uuid import UUID, uuid4

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from agent_history.contract.events import (
    Event,
    EventType,
    RunRequestData,
    encode_event,
    event_from_dict,
    record_headers,
    record_key,
    wire_headers,
)
from agent_history.contract.settings import environment_of
from agent_history.devservices import kafka, postgres
from agent_history.devservices.settings import ServicesSettings
from agent_history.projector.checkpoints import read_checkpoints
from agent_history.projector.core.fold import fold_all
from agent_history.projector.core.verdicts import OpenRun, timed_out
from agent_history.projector.settings import ProjectorSettings
from agent_history.read_model.tables import agent_executions, agents, projector_checkpoints, users
from tests.support import eventually

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# Every column of a row but its bookkeeping timestamps (created_at, updated_at).
COLUMNS = [c.name for c in agent_executions.columns if c.name not in {"created_at", "updated_at"}]
Row = dict[str, Any]
Fault = Literal["kill", "kafka", "postgres"]
Owner = Literal["agent", "user"]

# ---- the stream -------------------------------------------------------------------------------

_ZONES = [timezone(timedelta(hours=h, minutes=m)) for h, m in ((0, 0), (2, 0), (-5, -30), (9, 0))]
_NAMES = [None, None, "Planner", "Researcher", "Summariser ✓"]
_TERMINALS: list[tuple[EventType, dict[str, Any]]] = [
    ("ExecutionCompleted", {"output_data": "done"}),
    ("ExecutionCompleted", {"output_data": {"answer": "42", "tokens": 17}}),
    ("ExecutionCompleted", {"output_data": [1, "two", None]}),
    ("ExecutionCompleted", {}),
    ("ExecutionFailed", {"error_message": "ToolError: step failed ✗", "output_data": 3.5}),
    ("ExecutionFailed", {"error_message": "timeout"}),
    ("ExecutionCancelled", {"reason": "user hit stop"}),
    ("ExecutionCancelled", {}),
]
_BASE = datetime(2025, 6, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Stream:
    """The events to send, in send order (duplicates included), and who they belong to."""

    events: list[Event]
    agents: list[UUID]
    users: list[UUID]


def generate_stream(rng: random.Random, executions: int) -> Stream:
    """Executions of a few agents and users; every execution's events shuffled and some sent
    more than once. Structure comes from ``rng``; ids are fresh, so runs never share rows."""
    agent_ids = [uuid4() for _ in range(max(2, executions // 40))]
    user_ids = [uuid4() for _ in range(max(3, executions // 20))]
    events: list[Event] = []
    for _ in range(executions):
        one = _execution(rng, rng.choice(agent_ids), rng.choice(user_ids), user_ids)
        events += one + [e for e in one for _ in range(rng.choice((0, 0, 0, 1, 2)))]
    rng.shuffle(events)
    return Stream(events, agent_ids, user_ids)


def _execution(rng: random.Random, agent: UUID, user: UUID, all_users: list[UUID]) -> list[Event]:
    eid = uuid4()
    start = _BASE + _us(rng.randrange(86_400_000_000))
    ids = {"execution_id": eid, "agent_id": agent, "user_id": user}

    def event(kind: EventType, at: datetime, data: dict[str, Any]) -> Event:
        envelope = {"specversion": "1.0", "id": uuid4(), "source": "urn:faults", "type": kind}
        zoned = at.astimezone(rng.choice(_ZONES))
        return event_from_dict({**envelope, "subject": eid, "time": zoned, "data": {**ids, **data}})

    def request(n: int) -> dict[str, Any]:
        inputs = {
            "prompt": f"question {n}, ünïcode ✓",
            "n": n,
            "ratio": rng.random(),
            "tags": ["a", "b"][: rng.randrange(3)],
            "nested": {"deep": [1, {"x": None}]},
        }
        return {
            "input_data": inputs,
            "agent_name": rng.choice(_NAMES),
            "user_name": rng.choice(_NAMES),
        }

    events: list[Event] = []
    if rng.random() < 0.4:
        events.append(event("ExecutionQueued", start - _us(rng.randrange(30_000_000)), request(0)))
    if rng.random() < 0.9 or not events:
        events.append(event("ExecutionStarted", start, request(1)))
    if rng.random() < 0.05:  # a second worker claims the run later
        events.append(event("ExecutionStarted", start + _us(rng.randrange(5_000_000)), request(2)))
    # A worker's heartbeats, 15 s apart; now and then a watchdog's verdict after the last one.
    seen = start
    for beat in range(rng.choice((0, 0, 1, 2))):
        seen = start + _us((beat + 1) * 15_000_000 + rng.randrange(-500_000, 500_000))
        events.append(event("ExecutionHeartbeat", seen, {}))
    if rng.random() < 0.1:
        run = OpenRun(eid, agent, user, "running", start, seen, None)
        events.append(timed_out(run, "worker_lost", seen, timedelta(seconds=60)))
    ended = start
    for i in range(rng.choice((0, 1, 1, 1, 1, 2))):
        # Mostly after the start, a few before it (clock skew); a second one may tie on time.
        if i == 0 or rng.random() < 0.7:
            ended = start + _us(rng.randrange(-1_000_000, 120_000_000))
        kind, data = rng.choice(_TERMINALS)
        other_user = {"user_id": rng.choice(all_users)} if rng.random() < 0.03 else {}
        events.append(event(kind, ended, {**data, **other_user}))
    return events


def _us(microseconds: int) -> timedelta:
    return timedelta(microseconds=microseconds)


def split(events: Sequence[Event], parts: int) -> list[list[Event]]:
    """``parts`` consecutive slices of nearly equal size."""
    bounds = [len(events) * i // parts for i in range(parts + 1)]
    return [list(events[a:b]) for a, b in itertools.pairwise(bounds)]


async def start_producer(bootstrap: str) -> Any:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    return producer


async def send(producer: Any, topic: str, events: Sequence[Event]) -> list[Any]:
    """Send as any client would (key = execution id); returns the brokers' RecordMetadata."""
    headers = wire_headers(record_headers())
    futures = [
        await producer.send(
            topic, encode_event(e), key=record_key(e.data.execution_id), headers=headers
        )
        for e in events
    ]
    return list(await asyncio.gather(*futures))


def wanted_offsets(sent: Sequence[Any]) -> dict[int, int]:
    """Per partition, the checkpoint that covers every record in ``sent``."""
    wanted: dict[int, int] = {}
    for meta in sent:
        wanted[meta.partition] = max(wanted.get(meta.partition, 0), meta.offset + 1)
    return wanted


# ---- the projector as a process ---------------------------------------------------------------


class ProjectorProcess:
    """`python -m agent_history.server projector` as a child process, logging into one file."""

    def __init__(self, settings: ProjectorSettings, log: Path) -> None:
        self._env = environment_of(settings)
        self.log = log
        self._process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        with self.log.open("ab") as out:
            out.write(f"==== projector start {self.starts} ====\n".encode())
            out.flush()
            self._process = subprocess.Popen(
                [sys.executable, "-m", "agent_history.server", "projector"],
                env=self._env,
                cwd=PROJECT_ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    async def kill(self) -> None:
        """SIGKILL: no shutdown code runs, whatever the process was doing."""
        if self._process is not None:
            self._process.send_signal(signal.SIGKILL)
            await asyncio.to_thread(self._process.wait)

    async def stop(self) -> None:
        """SIGTERM (a clean shutdown), SIGKILL if that takes over 20 s."""
        if self._process is None or self._process.poll() is not None:
            return
        self._process.terminate()
        try:
            await asyncio.to_thread(self._process.wait, 20)
        except subprocess.TimeoutExpired:
            await self.kill()


# ---- the reference and the table --------------------------------------------------------------


def expected_rows(events: list[Event]) -> dict[UUID, Row]:
    return {key: {c: getattr(row, c) for c in COLUMNS} for key, row in fold_all(events).items()}


def expected_names(events: list[Event], whose: Owner) -> dict[UUID, str | None]:
    """Each id's name from the newest event naming it ((time, name) decides); None if unnamed."""
    best: dict[UUID, tuple[datetime, str] | None] = {}
    for e in events:
        data = e.data
        key = data.agent_id if whose == "agent" else data.user_id
        name = None
        if isinstance(data, RunRequestData):
            name = data.agent_name if whose == "agent" else data.user_name
        seen = best.get(key)
        if name is not None and (seen is None or (e.time, name) > seen):
            best[key] = (e.time, name)
        else:
            best.setdefault(key, None)
    return {key: None if seen is None else seen[1] for key, seen in best.items()}


async def stored_rows(engine: AsyncEngine, agent_ids: list[UUID]) -> dict[UUID, Row]:
    """Every row of these agents (so a row the fold does not have shows up too)."""
    query = select(*(agent_executions.c[c] for c in COLUMNS)).where(
        agent_executions.c.agent_id.in_(agent_ids)
    )
    async with engine.connect() as conn:
        return {row.id: dict(row._mapping) for row in await conn.execute(query)}


async def stored_names(
    engine: AsyncEngine, whose: Owner, ids: list[UUID]
) -> dict[UUID, str | None]:
    table = agents if whose == "agent" else users
    async with engine.connect() as conn:
        result = await conn.execute(select(table.c.id, table.c.name).where(table.c.id.in_(ids)))
        return {row.id: row.name for row in result}


def differences(expected: dict[UUID, Row], actual: dict[UUID, Row], what: str) -> list[str]:
    """One line per differing row, saying which fields differ and how."""
    lines = []
    for key in sorted(expected.keys() | actual.keys()):
        if key not in actual:
            lines.append(f"{what} {key}: missing from the table; fold: {expected[key]}")
        elif key not in expected:
            lines.append(f"{what} {key}: in the table but not in the fold: {actual[key]}")
        elif expected[key] != actual[key]:
            fields = [
                f"{c}: table={actual[key].get(c)!r} fold={expected[key].get(c)!r}"
                for c in expected[key]
                if expected[key].get(c) != actual[key].get(c)
            ]
            lines.append(f"{what} {key}: " + "; ".join(fields))
    return lines


async def checkpoints(engine: AsyncEngine, settings: ProjectorSettings) -> dict[int, int]:
    """Where the projector stands, per partition. Waits out a database restart (the scenario's
    own, or another session's on the same local services) for up to a minute."""
    deadline = time.monotonic() + 60.0
    while True:
        try:
            async with engine.connect() as conn:
                return await read_checkpoints(conn, settings.consumer_group, settings.topic)
        except (DBAPIError, OSError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)  # the server is restarting: ask again


async def dead_lettered(engine: AsyncEngine, settings: ProjectorSettings) -> int:
    c = projector_checkpoints.c
    query = select(func.coalesce(func.sum(c.dead_lettered), 0)).where(
        c.consumer_group == settings.consumer_group, c.topic == settings.topic
    )
    async with engine.connect() as conn:
        return int(await conn.scalar(query) or 0)


async def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """Per partition of a topic, the offset its next record will get."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    partitions = [TopicPartition(topic, p["partition"]) for p in described["partitions"]]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        return {tp.partition: end for tp, end in (await consumer.end_offsets(partitions)).items()}
    finally:
        await consumer.stop()


async def topic_size(bootstrap: str, topic: str) -> int:
    """How many records a topic holds (the sum of its partitions' end offsets)."""
    return sum((await end_offsets(bootstrap, topic)).values())


# ---- the scenario -----------------------------------------------------------------------------


@dataclass
class Outcome:
    events: int = 0
    executions: int = 0
    kills: int = 0
    kills_behind: int = 0  # kills that hit while records were still waiting to be applied
    kafka_restarts: int = 0
    kafka_down_s: float = 0.0  # from the broker's stop until it serves again, all restarts
    postgres_restarts: int = 0
    rows_compared: int = 0
    dead_lettered: int = 0
    dlq_records: int = 0
    seconds: float = 0.0
    mismatches: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"events={self.events} executions={self.executions} kills={self.kills} "
            f"(behind: {self.kills_behind}) broker_restarts={self.kafka_restarts} "
            f"(down {self.kafka_down_s:.1f}s) "
            f"db_restarts={self.postgres_restarts} wall={self.seconds:.1f}s "
            f"rows_compared={self.rows_compared} dead_lettered={self.dead_lettered} "
            f"dlq_records={self.dlq_records} mismatches={len(self.mismatches)}"
        )


def schedule(
    rng: random.Random, kills: int, *, restart_kafka: bool, restart_postgres: bool
) -> list[Fault]:
    """The faults in a random order: each comes after a phase of the stream."""
    faults: list[Fault] = ["kill"] * kills
    faults += ["kafka"] if restart_kafka else []
    faults += ["postgres"] if restart_postgres else []
    rng.shuffle(faults)
    return faults


async def run_scenario(
    settings: ProjectorSettings,
    services: ServicesSettings,
    engine: AsyncEngine,
    stream: Stream,
    faults: list[Fault],
    rng: random.Random,
    log: Path,
    *,
    drain_within: float = 60.0,
    broker_down_s: float = 0.0,
    before_drain: Callable[[], Awaitable[None]] | None = None,
    say: Callable[[str], None] = lambda line: None,
) -> Outcome:
    """Send the stream in phases with one fault after each but the last, against a projector
    process; wait until it has applied everything; compare the table with the fold. ``settings``
    must point at the local ``services``: those are the ones restarted. The broker stays down
    for ``broker_down_s`` at least. ``before_drain``: what else must be on the topic first
    (other producers finishing); the drain then waits for the whole topic."""
    started = time.monotonic()
    outcome = Outcome(events=len(stream.events), executions=len(expected_rows(stream.events)))
    projector = ProjectorProcess(settings, log)
    projector.start()
    producer = await start_producer(settings.kafka_bootstrap_servers)
    sent: list[Any] = []
    phases = split(stream.events, len(faults) + 1)
    try:
        for number, (fault, phase) in enumerate(zip([*faults, None], phases, strict=True)):
            before = sum((await checkpoints(engine, settings)).values())
            sent += await send(producer, settings.topic, phase)
            say(f"phase {number + 1}/{len(phases)}: {len(sent)} events sent; then {fault}")
            if fault is None:
                break
            await _progress_past(engine, settings, before)
            # A random pause, so that the fault lands at a different point of the stream.
            await asyncio.sleep(rng.uniform(0.0, 0.05))
            if fault == "kill":
                await projector.kill()
                outcome.kills += 1
                seen = await checkpoints(engine, settings)
                outcome.kills_behind += any(
                    seen.get(p, 0) < o for p, o in wanted_offsets(sent).items()
                )
                projector.start()
            elif fault == "kafka":
                # Producing pauses while the broker is down; the projector has to cope alone.
                await producer.stop()
                outcome.kafka_down_s += await _restart(kafka, services, broker_down_s)
                outcome.kafka_restarts += 1
                producer = await start_producer(settings.kafka_bootstrap_servers)
            else:
                await _restart(postgres, services)
                outcome.postgres_restarts += 1
        wanted = wanted_offsets(sent)
        if before_drain is not None:
            await before_drain()
            wanted = await end_offsets(settings.kafka_bootstrap_servers, settings.topic)
        await eventually(
            lambda: checkpoints(engine, settings),
            lambda seen: all(seen.get(p, 0) >= o for p, o in wanted.items()),
            what=f"checkpoints to cover every record: {wanted}",
            within=drain_within,
        )
    finally:
        await producer.stop()
        await projector.stop()
    outcome.seconds = time.monotonic() - started
    await compare(engine, settings, stream, outcome)
    return outcome


async def _restart(service: Any, services: ServicesSettings, down_s: float = 0.0) -> float:
    """Stop one local service (kafka or postgres), wait until it has been down ``down_s`` and
    start it again, whatever happens; returns how long it did not serve."""
    stopping = time.monotonic()
    try:
        await asyncio.to_thread(service.stop, services)
        await asyncio.sleep(down_s - (time.monotonic() - stopping))
    finally:
        await asyncio.to_thread(service.start, services)
    return time.monotonic() - stopping


async def _progress_past(engine: AsyncEngine, settings: ProjectorSettings, total: int) -> None:
    """Wait until the projector is applying records again (checkpoints moved past ``total``)."""
    await eventually(
        lambda: checkpoints(engine, settings),
        lambda seen: sum(seen.values()) > total,
        what=f"the projector to apply records past {total} in all",
        within=60.0,
    )


async def compare(
    engine: AsyncEngine, settings: ProjectorSettings, stream: Stream, outcome: Outcome
) -> None:
    """Fill in the comparison of the table (rows, names, dead letters) with the reference."""
    expected = expected_rows(stream.events)
    actual = await stored_rows(engine, stream.agents)
    outcome.rows_compared = len(expected)
    outcome.mismatches = differences(expected, actual, "execution")
    owners: list[tuple[Owner, list[UUID]]] = [("agent", stream.agents), ("user", stream.users)]
    for whose, ids in owners:
        names = expected_names(stream.events, whose)
        stored = await stored_names(engine, whose, ids)
        outcome.mismatches += differences(
            {k: {"name": v} for k, v in names.items()},
            {k: {"name": v} for k, v in stored.items()},
            whose,
        )
    outcome.dead_lettered = await dead_lettered(engine, settings)
    outcome.dlq_records = await topic_size(settings.kafka_bootstrap_servers, settings.dlq_topic)
