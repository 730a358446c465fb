"""The soak's agent workers: processes recording runs through the real spooling producer
(tests/producer_worker.py) into the soak's topic, all on one spool folder. SIGKILLed at random
moments, each replaced at once by a new worker on the same folder, which adopts and ships what
the dead one left spooled. Afterwards every run a worker reported must be in the table as it
reported it, and nothing else of theirs but at most one run in flight per kill."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from agent_history.contract.statuses import TERMINAL_STATUSES
from agent_history.producer import ProducerSettings
from agent_history.producer.settings import spool_directory
from agent_history.read_model.tables import agent_executions
from tests.producer_worker import FLUSH_S
from tests.producer_workers import Worker
from tests.support import eventually

Seen = tuple[uuid.UUID, str]  # a row's agent and status


@dataclass
class Tally:
    runs: int = 0  # reported runs found in the table as reported
    kills: int = 0
    in_flight: int = 0  # runs a killed worker recorded and never reported
    in_flight_open: int = 0  # of those, rows without a terminal status
    differences: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"worker_runs={self.runs} worker_kills={self.kills} in_flight_at_kills="
            f"{self.in_flight} (open: {self.in_flight_open}) "
            f"worker_differences={len(self.differences)}"
        )


class Crew:
    """``size`` workers recording at once, each with an agent id of its own."""

    def __init__(
        self,
        settings: ProducerSettings,
        reports: Path,
        size: int,
        pace: float,
        say: Callable[[str], None],
    ) -> None:
        self.settings, self.reports, self.pace, self.say = settings, reports, pace, say
        self.size = size
        self.live: list[Worker] = []
        self.killed: list[Worker] = []
        self.stopped: list[Worker] = []
        self._kills: asyncio.Task[None] | None = None

    async def start(self, rng: random.Random, kills: int, mean_gap_s: float) -> None:
        """Start the workers, and SIGKILL a random one ``kills`` times, ``mean_gap_s`` apart on
        average (a new one starting after each)."""
        for _ in range(self.size):
            await self._add()
        self._kills = asyncio.create_task(self._kill_at_random(rng, kills, mean_gap_s))

    async def _add(self) -> None:
        number = len(self.live) + len(self.killed) + len(self.stopped) + 1
        report = self.reports / f"worker-{number}.jsonl"
        # Half of each cycle inside a run, so that a kill often lands in the middle of one.
        forever = ("--seconds", "86400", "--pace", str(self.pace), "--busy", str(self.pace))
        self.live.append(await Worker.start(self.settings, report, *forever, agent=uuid.uuid4()))

    async def _kill_at_random(self, rng: random.Random, kills: int, mean_gap_s: float) -> None:
        for _ in range(kills):
            await asyncio.sleep(rng.uniform(0.5, 1.5) * mean_gap_s)
            worker = rng.choice(self.live)
            await worker.kill()
            self.live.remove(worker)
            self.killed.append(worker)
            self.say(f"{worker.report.stem} SIGKILLed after {len(worker.runs())} runs reported")
            await self._add()

    async def finish(self) -> None:
        """After the kills, stop the live workers cleanly (each flushes before it exits)."""
        if self._kills is not None:
            await self._kills
        for worker in self.live:  # started up, so that it has adopted what it found
            await eventually(worker.count_runs, lambda n: n > 0, what=f"{worker.report} runs")
        for worker in list(self.live):
            code = await worker.stop(within=FLUSH_S + 30)
            self.live.remove(worker)
            self.stopped.append(worker)
            if code != 0:
                self.say(f"{worker.report.stem} exited with {code}; see its .log")

    async def abandon(self) -> None:
        """On the way out, after a failure too: no worker outlives the soak."""
        if self._kills is not None:
            self._kills.cancel()
        for worker in self.live:
            if worker.child.returncode is None:
                await worker.kill()

    async def compare(self, engine: AsyncEngine, others: list[uuid.UUID]) -> Tally:
        """Every row not of the ``others`` agents against what the workers reported."""
        tally = Tally(kills=len(self.killed))
        rows = await _rows(engine, others)
        whose = {w.agent: w for w in [*self.killed, *self.stopped]}
        for worker in whose.values():
            tally.differences += _check_reports(worker, worker in self.stopped)
            for run in worker.runs():
                row = rows.pop(uuid.UUID(run["id"]), None)
                if row == (worker.agent, run["status"]):
                    tally.runs += 1
                else:
                    seen = "missing from the table" if row is None else f"in the table as {row}"
                    tally.differences.append(f"{worker.report.stem} run {run}: {seen}")
        unreported = Counter(agent for agent, _ in rows.values())
        for agent, count in unreported.items():
            owner = whose.get(agent)
            if owner is None or owner in self.stopped or count > 1:
                name = owner.report.stem if owner else f"agent {agent} of no worker"
                tally.differences.append(f"{name}: {count} rows it never reported")
        tally.in_flight = sum(unreported.values())
        tally.in_flight_open = sum(s not in TERMINAL_STATUSES for _, s in rows.values())
        folder = spool_directory(self.settings)
        left = sorted(p.name for p in folder.iterdir()) if folder.exists() else []
        if left:
            tally.differences.append(f"spool {folder} still holds {left}")
        return tally


def _check_reports(worker: Worker, stopped: bool) -> list[str]:
    """Recording never raised; a cleanly stopped worker exited 0 with everything shipped."""
    found = [f"{worker.report.stem} raised: {line}" for line in worker.lines() if "raised" in line]
    if stopped:
        last = worker.lines()[-1] if worker.lines() else {}
        stats = last.get("stats", {})
        if worker.child.returncode != 0 or not last.get("flushed") or stats.get("lost"):
            found.append(f"{worker.report.stem} exited {worker.child.returncode}: {last}")
    return found


async def _rows(engine: AsyncEngine, others: list[uuid.UUID]) -> dict[uuid.UUID, Seen]:
    c = agent_executions.c
    query = select(c.id, c.agent_id, c.status).where(c.agent_id.not_in(others))
    async with engine.connect() as conn:
        return {row.id: (row.agent_id, row.status) for row in await conn.execute(query)}
