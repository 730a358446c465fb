"""The watchdog: gives up on runs whose worker was lost, that ran past their deadline or were
queued too long, by publishing verdict events to the topic (never by writing the table, so a
replay rebuilds the same rows). What is due is decided in core/verdicts.py; this module holds
the loop, its SQL and the lock.

Exactly one watchdog judges per database: the one that holds a PostgreSQL advisory lock, on
a connection of its own that it proves alive every round. The others try to take the lock
every interval; it is freed when the holder stops, or when its session ends because it died.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter, deque
from collections.abc import Callable
from datetime import UTC, datetime
from uuid import UUID

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from agent_history.projector.checkpoints import read_checkpoints
from agent_history.projector.consumer import retry_delay
from agent_history.projector.core.verdicts import (
    Limits,
    OpenRun,
    Sample,
    fresh_as_of,
    verdicts,
)
from agent_history.projector.ports import VerdictLog
from agent_history.projector.settings import WatchdogSettings

log = logging.getLogger(__name__)

# One watchdog at a time per database (an arbitrary constant key for pg_advisory_lock).
LOCK_KEY = 0x77746368
_TRY_LOCK = text(f"SELECT pg_try_advisory_lock({LOCK_KEY})")
_UNLOCK = text(f"SELECT pg_advisory_unlock({LOCK_KEY})")
_ALIVE = text("SELECT 1")

# The candidates, each branch served by a partial index of migration 0004; core/verdicts.py
# decides. Oldest first, so that a backlog is worked off in the order it ran out.
_COLUMNS = "id, agent_id, user_id, status, execution_start, last_seen_at, timeout_ms"
_RUNNING = f"""
(SELECT {_COLUMNS} FROM agent_executions
 WHERE status = 'running' AND (last_seen_at <= :lost_before OR last_seen_at IS NULL)
 ORDER BY last_seen_at LIMIT :max)
UNION
(SELECT {_COLUMNS} FROM agent_executions
 WHERE status = 'running' AND timeout_ms IS NOT NULL
   AND execution_start <= CAST(:as_of AS timestamptz) - timeout_ms * interval '1 millisecond'
 ORDER BY execution_start LIMIT :max)
"""
_PENDING = f"""
UNION
(SELECT {_COLUMNS} FROM agent_executions
 WHERE status = 'pending' AND execution_start <= :queued_before
 ORDER BY execution_start LIMIT :max)
"""
_OPEN_RUNS = text(_RUNNING)
_OPEN_RUNS_AND_QUEUED = text(_RUNNING + _PENDING)
# Samples of the topic's end offsets kept while the projector catches up on them.
_MAX_SAMPLES = 10_000


def _now() -> datetime:
    return datetime.now(UTC)


class Watchdog:
    """Judges the open runs every interval while it holds the lock; counts what it did."""

    def __init__(
        self,
        settings: WatchdogSettings,
        engine: AsyncEngine,
        connect: Callable[[], VerdictLog],
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self._settings = settings
        self._engine = engine
        self._connect = connect
        self._clock = clock
        self._limits = Limits(settings.lost_after, settings.queued_timeout)
        self._samples: deque[Sample] = deque(maxlen=_MAX_SAMPLES)
        self._published: set[UUID] = set()
        # For metrics: verdicts published by reason, rounds judged, rounds held back because
        # the projector had not applied the topic yet, and whether this one holds the lock.
        self.verdicts: Counter[str] = Counter()
        self.rounds = 0
        self.held_back = 0
        self.leading = False

    async def run(self, stop: asyncio.Event, leading: asyncio.Event | None = None) -> None:
        """Until ``stop``: wait for the lock, then judge every interval; ``leading`` is set
        once this one holds the lock. Any failure gives the lock up and starts over."""
        attempt = 0
        while not stop.is_set():
            try:
                await self._lead(stop, leading)
                attempt = 0
            except Exception as e:
                attempt += 1
                delay = retry_delay(attempt, self._settings.retry_max_seconds)
                log.warning("watchdog stopped judging (%s); retrying in %.1fs", e, delay)
                await _wait(stop, delay)

    async def _lead(self, stop: asyncio.Event, leading: asyncio.Event | None) -> None:
        interval = self._settings.watchdog_interval_seconds
        async with self._engine.connect() as conn:
            # Autocommit: a session-level lock, and no transaction left open for hours.
            lock = await conn.execution_options(isolation_level="AUTOCOMMIT")
            while not await lock.scalar(_TRY_LOCK):
                if await _wait(stop, interval):
                    return
            try:
                await self._judge_until(stop, lock, leading)
            finally:
                await _release(lock)

    async def _judge_until(
        self, stop: asyncio.Event, lock: AsyncConnection, leading: asyncio.Event | None
    ) -> None:
        topic = self._connect()
        await topic.start()
        try:
            log.info("watchdog: judging the open runs (this one holds the lock)")
            self.leading = True
            if leading is not None:
                leading.set()
            while True:
                await lock.execute(_ALIVE)  # the lock lives exactly as long as this session
                await self.judge(topic)
                if await _wait(stop, self._settings.watchdog_interval_seconds):
                    return
        finally:
            self.leading = False
            self._samples.clear()
            await topic.stop()

    async def judge(self, topic: VerdictLog) -> None:
        """One round: publish the verdicts due as of the newest time the table is complete."""
        self._samples.append((self._clock(), await topic.end_offsets()))
        async with self._engine.connect() as conn:
            settings = self._settings
            applied = await read_checkpoints(conn, settings.consumer_group, settings.topic)
            as_of = fresh_as_of(self._samples, applied)
            if as_of is None:
                self.held_back += 1
                log.info("watchdog: the projector has not applied the topic yet; waiting")
                return
            while self._samples[0][0] < as_of:
                self._samples.popleft()
            runs = await self._open_runs(conn, as_of)
        due = verdicts(runs, as_of, self._limits)
        # Published in an earlier round and not applied yet: the same event, so not again.
        fresh = [v for v in due if v.id not in self._published]
        await topic.publish(fresh)
        self._published = {v.id for v in due}
        self.rounds += 1
        for v in fresh:
            self.verdicts[v.data.reason] += 1
            log.warning(
                "execution %s timed out: %s (last seen %s; %s + %d ms = %s)",
                v.execution_id,
                v.data.reason,
                v.data.last_seen_at.isoformat(),
                v.data.since.isoformat(),
                v.data.limit_ms,
                v.time.isoformat(),
                extra={"execution_id": str(v.execution_id)},
            )

    async def _open_runs(self, conn: AsyncConnection, as_of: datetime) -> list[OpenRun]:
        limits = self._limits
        values = {
            "lost_before": as_of - limits.lost_after,
            "as_of": as_of,
            "max": self._settings.watchdog_max_verdicts,
        }
        statement = _OPEN_RUNS
        if limits.queued_timeout is not None:
            statement = _OPEN_RUNS_AND_QUEUED
            values["queued_before"] = as_of - limits.queued_timeout
        result = await conn.execute(statement, values)
        return [OpenRun(**row._mapping) for row in result]


async def _release(lock: AsyncConnection) -> None:
    """Unlock, so the pooled connection goes back without the lock; else close it for good."""
    try:
        await lock.execute(_UNLOCK)
    except Exception:
        with contextlib.suppress(Exception):
            await lock.invalidate()


async def _wait(stop: asyncio.Event, seconds: float) -> bool:
    """Wait ``seconds`` or until ``stop``; whether ``stop`` is set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()
