"""The watchdog on the real broker and database: lost workers, deadlines and queued runs become
timed_out through verdict events, a late real end wins, replay agrees, and one watchdog judges
at a time.

Each test has a database of its own: the watchdog judges every open run of its database.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from agent_history.contract.events import (
    Event,
    EventType,
    ExecutionTimedOut,
    event_from_dict,
    parse_event,
)
from agent_history.contract.settings import environment_of
from agent_history.producer.settings import ProducerSettings
from agent_history.projector.settings import ProjectorSettings, WatchdogSettings
from agent_history.projector.watchdog import LOCK_KEY, Watchdog
from agent_history.read_model.tables import agent_executions
from agent_history.server.bootstrap import build_watchdog
from tests.conftest import projecting
from tests.faults_support import PROJECT_ROOT, send, start_producer
from tests.support import caught_up, eventually, reference, replay, table

pytestmark = pytest.mark.integration

LOST_AFTER = 2.0
INTERVAL = 0.5
QUEUED_TIMEOUT = 3.0
# What a round itself may take beyond its interval (end offsets, two statements, a publish).
ROUND = 0.5


@pytest.fixture
def watchdog_settings(settings: ProjectorSettings) -> WatchdogSettings:
    return WatchdogSettings(
        kafka_bootstrap_servers=settings.kafka_bootstrap_servers,
        topic=settings.topic,
        dlq_topic=settings.dlq_topic,
        database_url=settings.database_url,
        consumer_group=settings.consumer_group,
        watchdog_interval_seconds=INTERVAL,
        lost_after_seconds=LOST_AFTER,
        queued_timeout_seconds=QUEUED_TIMEOUT,
        retry_max_seconds=1.0,
    )


@pytest.fixture
async def producer(settings: ProjectorSettings) -> AsyncIterator[Any]:
    p = await start_producer(settings.kafka_bootstrap_servers)
    yield p
    await p.stop()


@asynccontextmanager
async def watching(settings: WatchdogSettings) -> AsyncIterator[Watchdog]:
    """A watchdog, wired as `agent-history watchdog` wires it, running in this event loop."""
    stop = asyncio.Event()
    async with build_watchdog(settings) as watchdog:
        task = asyncio.create_task(watchdog.run(stop))
        try:
            yield watchdog
        finally:
            stop.set()
            await asyncio.wait_for(task, timeout=30)


class Run:
    """The events of one execution, as a worker (or a scheduler) writes them."""

    def __init__(self) -> None:
        self.id, self.agent_id, self.user_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()

    def event(self, kind: EventType, at: datetime, **data: Any) -> Event:
        if kind in ("ExecutionQueued", "ExecutionStarted"):
            data.setdefault("input_data", {"prompt": "p"})
        ids = {"execution_id": self.id, "agent_id": self.agent_id, "user_id": self.user_id}
        return event_from_dict(
            {
                "specversion": "1.0",
                "id": uuid.uuid4(),
                "source": "urn:worker:test",
                "type": kind,
                "subject": self.id,
                "time": at,
                "data": {**ids, **data},
            }
        )


async def row_of(engine: AsyncEngine, run: Run) -> Any:
    async with engine.connect() as conn:
        result = await conn.execute(select(agent_executions).where(agent_executions.c.id == run.id))
        return result.one_or_none()


async def reaches(engine: AsyncEngine, run: Run, status: str, within: float) -> Any:
    return await eventually(
        lambda: row_of(engine, run),
        lambda row: row is not None and row.status == status,
        what=f"execution {run.id} to be {status}",
        within=within,
    )


async def records_on(bootstrap: str, topic: str) -> list[Any]:
    """Every record of the topic's three partitions, from the start to the current end."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(3)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        seen: list[Any] = []
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                seen.extend(records)
        return seen
    finally:
        await consumer.stop()


async def verdicts_on(bootstrap: str, topic: str) -> list[tuple[ExecutionTimedOut, Any]]:
    """The verdicts on the topic, each with its record."""
    found = []
    for record in await records_on(bootstrap, topic):
        event = parse_event(record.value)
        if isinstance(event, ExecutionTimedOut):
            found.append((event, record))
    return found


@pytest.mark.usefixtures("projector")
async def test_a_run_whose_worker_stops_times_out_and_a_late_completed_wins(
    settings: ProjectorSettings,
    watchdog_settings: WatchdogSettings,
    engine: AsyncEngine,
    producer: Any,
) -> None:
    run = Run()
    started_at = datetime.now(UTC)
    beat_at = started_at + timedelta(milliseconds=200)
    sent = await send(
        producer,
        settings.topic,
        [run.event("ExecutionStarted", started_at), run.event("ExecutionHeartbeat", beat_at)],
    )
    await caught_up(engine, settings.consumer_group, settings.topic, sent)
    lost_at = beat_at + timedelta(seconds=LOST_AFTER)

    async with watching(watchdog_settings) as watchdog:
        # Then nothing: the worker is gone.
        row = await reaches(engine, run, "timed_out", within=LOST_AFTER + INTERVAL + 10)
        assert (row.execution_end, row.last_seen_at, row.error_message) == (
            lost_at,
            beat_at,
            "worker_lost",
        )
        assert row.execution_time_ms == (lost_at - started_at) // timedelta(milliseconds=1)
        ((verdict, record),) = await verdicts_on(settings.kafka_bootstrap_servers, settings.topic)
        assert (verdict.time, verdict.data.last_seen_at) == (lost_at, beat_at)
        # Published within one watchdog period of the moment the limit ran out.
        published = datetime.fromtimestamp(record.timestamp / 1000, UTC)
        assert published - lost_at <= timedelta(seconds=INTERVAL + ROUND), published

        # The worker was only cut off: its real end arrives late, and wins.
        ended_at = lost_at + timedelta(seconds=3)
        sent = await send(
            producer, settings.topic, [run.event("ExecutionCompleted", ended_at, output_data=1)]
        )
        row = await reaches(engine, run, "completed", within=30)
        assert (row.execution_end, row.output_data, row.error_message) == (ended_at, 1, None)
        assert row.last_seen_at == ended_at
        await asyncio.sleep(3 * INTERVAL)  # a few more rounds: nothing more to judge
        assert watchdog.verdicts == Counter({"worker_lost": 1})

    live = await table(engine)
    assert live[run.id]["status"] == "completed"
    logged = await records_on(settings.kafka_bootstrap_servers, settings.topic)
    assert live == reference([parse_event(r.value) for r in logged])
    await replay(settings)
    assert await table(engine) == live


@pytest.mark.usefixtures("projector")
async def test_deadlines_time_out_beating_runs_and_queued_runs_time_out(
    settings: ProjectorSettings,
    watchdog_settings: WatchdogSettings,
    engine: AsyncEngine,
    producer: Any,
) -> None:
    deadline, queued, healthy = Run(), Run(), Run()
    now = datetime.now(UTC)
    sent = await send(
        producer,
        settings.topic,
        [
            deadline.event("ExecutionStarted", now, timeout_ms=1500),
            queued.event("ExecutionQueued", now),
            healthy.event("ExecutionStarted", now),
        ],
    )
    await caught_up(engine, settings.consumer_group, settings.topic, sent)

    async def beat() -> None:
        while True:
            at = datetime.now(UTC)
            beats = [run.event("ExecutionHeartbeat", at) for run in (deadline, healthy)]
            await send(producer, settings.topic, beats)
            await asyncio.sleep(0.3)

    beating = asyncio.create_task(beat())
    try:
        async with watching(watchdog_settings) as watchdog:
            row = await reaches(engine, deadline, "timed_out", within=1.5 + INTERVAL + 10)
            assert (row.error_message, row.execution_time_ms) == ("deadline_exceeded", 1500)
            assert row.last_seen_at > now + timedelta(milliseconds=1500), "it kept beating"
            row = await reaches(engine, queued, "timed_out", within=QUEUED_TIMEOUT + INTERVAL + 10)
            assert row.error_message == "queued_too_long"
            assert row.execution_end == now + timedelta(seconds=QUEUED_TIMEOUT)
            assert row.execution_time_ms is None, "it never started"
            # Beating all along, past lost_after: still running.
            assert (await row_of(engine, healthy)).status == "running"
            await asyncio.sleep(LOST_AFTER)
            assert (await row_of(engine, healthy)).status == "running"
            assert watchdog.verdicts == Counter({"deadline_exceeded": 1, "queued_too_long": 1})
    finally:
        beating.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await beating


async def test_no_verdict_while_the_projector_is_behind(
    settings: ProjectorSettings,
    watchdog_settings: WatchdogSettings,
    engine: AsyncEngine,
    producer: Any,
) -> None:
    run = Run()
    long_ago = datetime.now(UTC) - timedelta(minutes=5)
    async with projecting(settings):
        sent = await send(producer, settings.topic, [run.event("ExecutionStarted", long_ago)])
        await caught_up(engine, settings.consumer_group, settings.topic, sent)
    # The worker is alive, but the projector is down: the table shows a run silent for minutes.
    beat_at = datetime.now(UTC)
    await send(producer, settings.topic, [run.event("ExecutionHeartbeat", beat_at)])

    async with watching(watchdog_settings) as watchdog:

        async def held_back() -> int:
            return watchdog.held_back

        await eventually(held_back, lambda n: n >= 3, what="three rounds held back")
        assert not watchdog.verdicts
        assert (await row_of(engine, run)).status == "running"

        async with projecting(settings):
            # Judged on the heartbeat, once the projector has applied it.
            row = await reaches(engine, run, "timed_out", within=LOST_AFTER + INTERVAL + 10)
    assert row.last_seen_at == beat_at
    assert row.execution_end == beat_at + timedelta(seconds=LOST_AFTER)


class WatchdogProcess:
    """`python -m agent_history.server watchdog` as a child process, to be SIGKILLed."""

    def __init__(self, settings: WatchdogSettings, log: Path) -> None:
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "agent_history.server", "watchdog"],
                env=environment_of(settings),
                cwd=PROJECT_ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(10)


_LOCK_HOLDERS = text(
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
    "AND objid = :key AND database = (SELECT oid FROM pg_database "
    "WHERE datname = current_database())"
)


async def lock_holders(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(_LOCK_HOLDERS, {"key": LOCK_KEY}) or 0)


@pytest.mark.usefixtures("projector")
async def test_one_watchdog_judges_at_a_time_and_another_takes_over_a_dead_one(
    settings: ProjectorSettings,
    watchdog_settings: WatchdogSettings,
    engine: AsyncEngine,
    producer: Any,
    tmp_path: Path,
) -> None:
    first = WatchdogProcess(watchdog_settings, tmp_path / "watchdog.log")
    try:
        await eventually(
            lambda: lock_holders(engine), lambda n: n == 1, what="the first watchdog to lead"
        )
        async with watching(watchdog_settings) as second:
            silent = Run()
            long_ago = datetime.now(UTC) - timedelta(minutes=5)
            await send(producer, settings.topic, [silent.event("ExecutionStarted", long_ago)])
            await reaches(engine, silent, "timed_out", within=30)
            await asyncio.sleep(3 * INTERVAL)
            assert (second.leading, second.verdicts) == (False, Counter()), "it only waits"
            assert await lock_holders(engine) == 1

            first.kill()  # SIGKILL: its session ends with it, and so does its lock

            async def leading() -> bool:
                return second.leading

            await eventually(leading, bool, what="the second watchdog to take over", within=10)
            orphan = Run()
            await send(producer, settings.topic, [orphan.event("ExecutionStarted", long_ago)])
            await reaches(engine, orphan, "timed_out", within=30)
            assert second.verdicts == Counter({"worker_lost": 1})
    except BaseException:
        print(first.log.read_text(errors="replace"))  # shown with the failure
        raise
    finally:
        if first.process.poll() is None:
            first.kill()
    judged = Counter(
        v.execution_id
        for v, _ in await verdicts_on(settings.kafka_bootstrap_servers, settings.topic)
    )
    assert judged == Counter({silent.id: 1, orphan.id: 1}), "one verdict each, from one watchdog"


# A worker process: one tracked run that heartbeats until the process is killed.
_WORKER = """
import asyncio, uuid
from agent_history.producer import ProducerSettings, Publisher, track_execution

async def main():
    async with Publisher(ProducerSettings()) as publisher:
        run = track_execution(uuid.uuid4(), uuid.uuid4(), {"task": "long"}, publisher=publisher)
        async with run as r:
            print(r.execution_id, flush=True)
            await asyncio.sleep(600)

asyncio.run(main())
"""


@pytest.mark.usefixtures("projector")
async def test_a_tracked_run_heartbeats_and_times_out_once_its_worker_is_killed(
    settings: ProjectorSettings,
    watchdog_settings: WatchdogSettings,
    engine: AsyncEngine,
    producer: Any,
    tmp_path: Path,
) -> None:
    worker_settings = ProducerSettings(
        kafka_bootstrap_servers=settings.kafka_bootstrap_servers,
        topic=settings.topic,
        spool_dir=tmp_path,
        linger_ms=0,
        heartbeat_interval_ms=300,
    )
    worker = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _WORKER,
        env=environment_of(worker_settings),
        cwd=PROJECT_ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert worker.stdout is not None
        line = await asyncio.wait_for(worker.stdout.readline(), 30)
        run = Run()
        run.id = uuid.UUID(line.decode().strip())
        # Heartbeats reach the table: last_seen_at moves on while the run is running.
        first = await reaches(engine, run, "running", within=30)
        beating = await eventually(
            lambda: row_of(engine, run),
            lambda row: row.last_seen_at > first.last_seen_at + timedelta(milliseconds=500),
            what="heartbeats to move last_seen_at",
        )
        assert beating.status == "running"
        async with watching(watchdog_settings):
            await asyncio.sleep(LOST_AFTER + 2 * INTERVAL)
            row = await row_of(engine, run)
            assert row.status == "running", "a heartbeating run is never judged lost"
            worker.kill()  # SIGKILL: no end event, no more heartbeats
            await worker.wait()
            killed_at = datetime.now(UTC)
            row = await reaches(engine, run, "timed_out", within=LOST_AFTER + INTERVAL + 10)
            assert row.error_message == "worker_lost"
            assert row.execution_end == row.last_seen_at + timedelta(seconds=LOST_AFTER)
            assert row.last_seen_at <= killed_at
        # A late real end (the worker only lost its connection) still wins.
        run.agent_id, run.user_id = row.agent_id, row.user_id
        late = run.event("ExecutionCompleted", datetime.now(UTC), output_data="late")
        await send(producer, settings.topic, [late])
        await reaches(engine, run, "completed", within=30)
    finally:
        if worker.returncode is None:
            worker.kill()
            await worker.wait()

    live = await table(engine)
    logged = await records_on(settings.kafka_bootstrap_servers, settings.topic)
    assert live == reference([parse_event(r.value) for r in logged])
    await replay(settings)
    assert await table(engine) == live, "replay rebuilds the same table"
