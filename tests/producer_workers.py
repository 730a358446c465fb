"""Agent workers as child processes (tests/producer_worker.py), for the producer's fault tests
and the soak (bench/soak_workers.py): start one, SIGKILL it or stop it cleanly, read what it
reported."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import uuid
from pathlib import Path
from typing import Any

from agent_history.contract.settings import environment_of
from agent_history.producer import ProducerSettings
from tests.producer_worker import AGENT

ROOT = Path(__file__).resolve().parents[1]


class Worker:
    """tests/producer_worker.py as a child process, and what it reported."""

    def __init__(self, child: asyncio.subprocess.Process, report: Path, agent: uuid.UUID) -> None:
        self.child, self.report, self.agent = child, report, agent

    @classmethod
    async def start(
        cls, settings: ProducerSettings, report: Path, *args: str, agent: uuid.UUID = AGENT
    ) -> Worker:
        """Runs are recorded for ``agent``; ``args`` go to the worker's command line."""
        with report.with_suffix(".log").open("ab") as log:
            child = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tests.producer_worker", str(report), *args,
                "--agent", str(agent),
                env=environment_of(settings), cwd=ROOT, stdout=log, stderr=log,
            )  # fmt: skip
        return cls(child, report, agent)

    async def wait(self, within: float) -> int:
        return await asyncio.wait_for(self.child.wait(), within)

    async def kill(self) -> int:
        """SIGKILL: no shutdown code runs, whatever the worker was recording."""
        self.child.send_signal(signal.SIGKILL)
        return await self.wait(within=10)

    async def stop(self, within: float) -> int:
        """SIGTERM: the worker ends its current run, flushes and writes its last line."""
        self.child.send_signal(signal.SIGTERM)
        return await self.wait(within)

    def lines(self) -> list[dict[str, Any]]:
        text = self.report.read_text() if self.report.exists() else ""
        return [json.loads(line) for line in text.splitlines() if line]

    def runs(self) -> list[dict[str, Any]]:
        return [line for line in self.lines() if "id" in line]

    async def count_runs(self) -> int:
        return len(self.runs())

    def flushed(self) -> dict[str, Any]:
        """The last line: whether the broker had everything before close, and the stats."""
        return self.lines()[-1]
