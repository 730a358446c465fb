"""The cells of the API benchmark's table: a request measured over HTTP and through asyncpg.

Each load generator runs in a process of its own (wrk, or a worker process of the pool); the
API process's CPU time and the machine's busy share are read around every measurement. A
measurement that saw errors (the shared server restarted, say) is taken again once.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import multiprocessing
import os
import sys
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from bench import api_load, api_profile, live
from bench.api_load import Paced, Result, Statements
from bench.api_profile import Profile
from bench.api_report import Cell, Line, Scenario

CONNECTIONS = (1, 32)
# The shared server went away (restarted by someone else's fault tests): wait and retry.
DROPPED = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,  # admin shutdown, cannot connect now
)


async def wait_for_database(dsn: str, within: float = 120.0) -> None:
    deadline = time.monotonic() + within
    while True:
        try:
            await (await asyncpg.connect(dsn)).close()
            return
        except DROPPED:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(1)


def worker_rss(pid: int) -> dict[int, int]:
    """VmRSS in kB of each process below ``pid`` (the API's workers), or of ``pid`` itself
    when it has none (a single process serves)."""
    parents: dict[int, int] = {}
    for path in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(path.parent.name)] = int(path.read_text().rsplit(")", 1)[1].split()[1])
        except OSError:  # gone meanwhile
            continue
    below: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {p for p, parent in parents.items() if parent in frontier} - below
        below |= frontier
    rss: dict[int, int] = {}
    for p in below or {pid}:
        try:
            status = Path(f"/proc/{p}/status").read_text()
            # multiprocessing's resource tracker is no worker
            if b"resource_tracker" in Path(f"/proc/{p}/cmdline").read_bytes():
                continue
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                rss[p] = int(line.split()[1])
    return rss


class Runner:
    """Runs the cells of the table: each load generator in a process of its own."""

    def __init__(self, args: argparse.Namespace, base: str, token: str, dsn: str, pid: int) -> None:
        self.args, self.base, self.token, self.dsn, self.pid = args, base, token, dsn, pid
        self.wrk = None if args.load_generator == "python" else api_load.find_wrk()
        spawn = multiprocessing.get_context("spawn")
        self.pool = ProcessPoolExecutor(1, mp_context=spawn)
        # The most resident memory each API process had while under load (kB, by pid).
        self.rss: dict[int, int] = {}

    async def sampled(self, load: Awaitable[Any]) -> Any:
        """``load``'s result; every API process's resident memory sampled meanwhile."""
        task = asyncio.ensure_future(load)
        while not task.done():
            for p, kb in (await asyncio.to_thread(worker_rss, self.pid)).items():
                self.rss[p] = max(kb, self.rss.get(p, 0))
            await asyncio.wait([task], timeout=0.25)
        return task.result()

    async def sampled_http(self, target: str, connections: int, seconds: int) -> Result:
        result: Result = await self.sampled(self.http(target, connections, seconds))
        return result

    async def paced(self, target: str, rate: float, seconds: int) -> Paced:
        """``target`` at ``rate`` requests a second, open loop, from a process of its own."""
        host, port = self.base.removeprefix("http://").split(":")
        load = asyncio.get_running_loop().run_in_executor(
            self.pool, api_load.paced_load, host, int(port), target, self.token, rate, seconds
        )
        paced: Paced = await self.sampled(load)
        return paced

    @property
    def generator(self) -> str:
        return "wrk" if self.wrk else "python"

    async def http(self, target: str, connections: int, seconds: int) -> Result:
        if self.wrk is not None:
            return await api_load.wrk(
                self.wrk, self.base + target, self.token, connections, seconds
            )
        host, port = self.base.removeprefix("http://").split(":")
        return await asyncio.get_running_loop().run_in_executor(
            self.pool, api_load.http_load, host, int(port), target, self.token, connections, seconds
        )

    async def db(self, work: Statements, connections: int, seconds: int) -> Result:
        return await asyncio.get_running_loop().run_in_executor(
            self.pool, api_load.db_load, self.dsn, work, connections, seconds
        )

    async def cell(self, measure: Callable[[], Awaitable[Result]]) -> Cell:
        """One measurement; run again once if it saw errors (the shared server may restart)."""
        for attempt in (1, 2):
            cpu, (busy0, total0) = live.cpu_seconds(self.pid), live.busy_jiffies()
            result = await measure()
            busy1, total1 = live.busy_jiffies()
            api_cpu = live.cpu_seconds(self.pid) - cpu
            cell = Cell(result, api_cpu, (busy1 - busy0) / max(1, total1 - total0))
            if not result.errors or attempt == 2:
                return cell
            print(f"  {result.errors} errors; measuring again", file=sys.stderr)
            await wait_for_database(self.dsn)
        raise AssertionError("unreachable")

    def seconds(self, one: Cell | None, connections: int) -> int:
        """A cell's duration: --seconds, or longer (up to --max-seconds) when fewer than three
        rounds of ``connections`` requests at the 1-connection latency would fit in it."""
        shortest, longest = int(self.args.seconds), int(self.args.max_seconds)
        if one is None:
            return shortest
        round_trip = connections * one.result.p50_ms / 1000 / (os.cpu_count() or 1)
        return min(longest, max(shortest, math.ceil(3 * round_trip)))

    async def warm(self, target: str) -> None:
        """A few requests first, so caches and the pool are what they are in steady use."""
        deadline = time.monotonic() + 2
        headers = {"Authorization": f"Bearer {self.token}"}
        async with httpx.AsyncClient(base_url=self.base, timeout=120) as client:
            for _ in range(20):
                (await client.get(target, headers=headers)).raise_for_status()
                if time.monotonic() > deadline:
                    break

    async def measure(self, scenario: Scenario, work: Statements) -> list[Line]:
        """The scenario at each concurrency: over HTTP, then the same statements via asyncpg."""
        await self.warm(scenario.target)
        lines: list[Line] = []
        for connections in CONNECTIONS:
            api_secs = self.seconds(lines[0].api if lines else None, connections)
            db_secs = self.seconds(lines[0].db if lines else None, connections)
            print(
                f"{scenario.name}, {connections} conn: API {api_secs} s, DB {db_secs} s",
                file=sys.stderr,
            )
            http = partial(self.http, scenario.target, connections, api_secs)
            if connections == CONNECTIONS[-1]:
                http = partial(self.sampled_http, scenario.target, connections, api_secs)
            api = await self.cell(http)
            db = await self.cell(partial(self.db, work, connections, db_secs))
            lines.append(Line(scenario, connections, api, db))
        return lines

    async def profiles(self, scenarios: list[Scenario]) -> list[Profile]:
        """py-spy on the API process while each scenario runs at the highest concurrency."""
        spy = api_profile.py_spy()
        if spy is None or self.args.no_profile:
            return []
        found = []
        for scenario in scenarios:
            output = live.LOGS / f"api-profile-{scenario.kind}-{time.strftime('%Y%m%d-%H%M%S')}.txt"
            output.parent.mkdir(parents=True, exist_ok=True)
            print(f"profiling the API: {scenario.name}, {CONNECTIONS[-1]} conn", file=sys.stderr)
            load = self.http(scenario.target, CONNECTIONS[-1], self.args.seconds)
            await api_profile.record(spy, self.pid, self.args.seconds, output, load)
            found.append(api_profile.summarise_profile(scenario.name, output, self.args.seconds))
        return found


async def quiet(within: float) -> float:
    """Wait (up to ``within`` s) for the machine to be mostly idle; its busy share then."""
    deadline = time.monotonic() + within
    while True:
        busy0, total0 = live.busy_jiffies()
        await asyncio.sleep(2)
        busy1, total1 = live.busy_jiffies()
        share = (busy1 - busy0) / max(1, total1 - total0)
        if share < 0.25 or time.monotonic() > deadline:
            return share
