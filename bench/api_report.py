"""The API benchmark's table, printed with rich and written with its notes as Markdown."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Literal

import asyncpg
from rich.console import Console
from rich.table import Table

from bench.api_data import Dataset
from bench.api_load import Paced, Result, Statements
from bench.api_profile import Profile

# Issue 13's goals, each from one run: at 32 connections the API serves first and cursor pages
# at 0.9 x the rate of the same statements straight through asyncpg; at half its own maximum
# first-page rate, offered at a constant rate, p99 stays within 10 ms; each API process stays
# within 150 MB resident under load.
GOAL_RATIO = 0.9
GOAL_PACED_P99_MS = 10.0
GOAL_RSS_MB = 150.0
HEADERS = (
    "request", "conns", "API p50 ms", "API p99 ms", "API req/s", "API CPU ms/req",
    "DB p50 ms", "DB p99 ms", "DB req/s", "requests API / DB", "req/s API / DB", "goal met",
)  # fmt: skip
Kind = Literal["first", "offset", "cursor", "filtered", "stats"]
SERVER = "uvicorn"  # the HTTP server `agent-history api` runs


@dataclass(frozen=True)
class Scenario:
    kind: Kind
    name: str
    target: str  # path and query of the GET
    goal: bool = False  # the latency and throughput goal applies (at the top concurrency)


@dataclass(frozen=True)
class Cell:
    result: Result
    api_cpu: float  # CPU seconds the API process used meanwhile
    busy: float  # share of all cores busy meanwhile


@dataclass(frozen=True)
class Line:
    scenario: Scenario
    connections: int
    api: Cell
    db: Cell

    @property
    def judged(self) -> bool:
        return self.scenario.goal and self.connections > 1

    @property
    def ratio(self) -> float:
        """The API's rate over the database's for the same statements."""
        return self.api.result.rate / self.db.result.rate if self.db.result.rate else 0.0

    @property
    def met(self) -> bool:
        return self.ratio >= GOAL_RATIO and not self.api.result.errors

    @property
    def missed(self) -> bool:
        return self.judged and not self.met

    @property
    def cpu_per_request(self) -> float:
        """Milliseconds of API process CPU per answered request."""
        return 1000 * self.api.api_cpu / max(1, self.api.result.requests)

    def cells(self) -> tuple[str, ...]:
        a, d = self.api.result, self.db.result
        met = ("yes" if self.met else "no") if self.judged else ""
        errors = f" ({a.errors} / {d.errors} errors)" if a.errors or d.errors else ""
        return (
            self.scenario.name, str(self.connections),
            _ms(a, a.p50_ms), _ms(a, a.p99_ms), rate(a.rate), f"{self.cpu_per_request:.2f}",
            _ms(d, d.p50_ms), _ms(d, d.p99_ms), rate(d.rate),
            f"{a.requests:,} / {d.requests:,}{errors}", f"{self.ratio:.2f} x", met,
        )  # fmt: skip


@dataclass(frozen=True)
class Report:
    command: str
    machine: str
    dataset: Dataset
    lines: list[Line]
    reads: dict[str, list[tuple[int, int, float]]]  # per statement: rows, buffers, ms
    works: dict[str, Statements]
    drift: dict[str, tuple[float, float]]  # slow statement: ms of executions 1-5, 6-8
    profiles: list[Profile]
    profiler: str  # why there is no profile, when there is none
    seconds: float  # the run, without generating data
    cell_seconds: tuple[int, int]  # how long a measurement runs: usually, at most
    code: str  # hash of the API code measured
    # First pages offered at half the API's 32-connection rate, open loop.
    paced: Paced | None
    rss: dict[int, int]  # the most resident kB of each API process under load, by pid
    # The first page at 32 connections from the minimal ASGI app (bench/api_floor.py).
    floor: Cell | None = None
    when: str = field(default_factory=lambda: datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"))

    def line(self, kind: Kind, connections: int) -> Line:
        return next(
            x for x in self.lines if x.scenario.kind == kind and x.connections == connections
        )


def _ms(result: Result, value: float) -> str:
    """A latency of ``result``; a dash when no request finished within the measurement."""
    return ms(value) if result.requests else "-"


def rate(value: float) -> str:
    return f"{value:,.1f}" if value < 10 else f"{value:,.0f}"


def ms(value: float) -> str:
    if value < 10:
        return f"{value:.2f}"
    return f"{value:.1f}" if value < 100 else f"{value:,.0f}"


def _processor() -> str:
    lines = Path("/proc/cpuinfo").read_text().splitlines()
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else platform.machine()


def _load_generator(generator: str) -> str:
    if generator == "wrk" and (wrk := shutil.which("wrk")):
        out = subprocess.run([wrk, "-v"], capture_output=True, text=True, check=False).stdout
        return f"{' '.join(out.split()[:2])}, one thread (own process)"
    return "an asyncio HTTP/1.1 client on uvloop (own process)"


async def describe_machine(dsn: str, generator: str, background: float, workers: int) -> str:
    """Cores, RAM, Python, PostgreSQL (with the settings that matter here), the stack."""
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    conn = await asyncpg.connect(dsn)
    try:
        pg = await conn.fetchval("SHOW server_version")
        knobs = []
        for knob in ("shared_buffers", "work_mem", "max_parallel_workers_per_gather", "jit"):
            knobs.append(f"{knob}={await conn.fetchval(f'SHOW {knob}')}")
    finally:
        await conn.close()
    stack = ", ".join(
        f"{p} {version(p)}"
        for p in (SERVER, "uvloop", "fastapi", "pydantic", "sqlalchemy", "asyncpg")
    )
    return (
        f"{os.cpu_count()} cores ({_processor()}), {ram:.0f} GiB RAM, Linux {platform.release()}; "
        f"Python {platform.python_version()}; PostgreSQL {pg} ({', '.join(knobs)}); "
        f"the API as {_processes(workers)} ({stack}); HTTP load: {_load_generator(generator)}; "
        "database load: asyncpg from its own process. All on the same machine, over loopback; "
        f"the PostgreSQL server is shared with other work (both cores {background:.0%} busy "
        "just before measuring)."
    )


def _processes(workers: int) -> str:
    if workers == 1:
        return f"one {SERVER} process"
    return f"{workers} {SERVER} worker processes (`agent-history api --workers {workers}`)"


def show(report: Report) -> None:
    table = Table(
        title=f"History API, {report.dataset.shape.executions:,} executions", show_lines=True
    )
    for header in HEADERS:
        table.add_column(header, justify="left" if header == "request" else "right")
    for line in report.lines:
        table.add_row(*line.cells())
    console = Console()
    console.width = max(console.width, 170)
    console.print(table)
    for words in paced_lines(report):
        console.print(words)


def paced_lines(report: Report) -> list[str]:
    """The open-loop and memory results, in words."""
    lines = []
    if (p := report.paced) is not None:
        met = "met" if p.p99_ms <= GOAL_PACED_P99_MS and not p.errors else "missed"
        lines.append(
            f"first page, open loop at {p.offered:,.0f} req/s (half the 32-connection rate) for "
            f"{p.seconds:.0f} s: p50 {ms(p.p50_ms)} ms, p99 {ms(p.p99_ms)} ms, max "
            f"{ms(p.max_ms)} ms, {p.answered:,} of {p.sent:,} answered, {p.errors} errors; "
            f"the generator sent late by {ms(p.late_p99_ms)} ms at p99, used "
            f"{1e6 * p.client_cpu / max(1, p.sent):,.0f} µs of CPU per request and "
            f"{p.connections} connections; goal p99 <= {GOAL_PACED_P99_MS:.0f} ms {met}"
        )
    if (floor := report.floor) is not None:
        first = report.line("first", 32)
        reference = first.db.result.rate
        f = floor.result
        lines.append(
            f"the floor, first page at 32 connections from a minimal ASGI app (no framework: "
            f"the same statement on an asyncpg pool, under {SERVER} with the same workers): "
            f"{rate(f.rate)} req/s, p99 {ms(f.p99_ms)} ms, "
            f"{1000 * floor.api_cpu / max(1, f.requests):.2f} ms of CPU per request, "
            f"{f.rate / reference if reference else 0:.2f} x the asyncpg reference; the API "
            f"{first.ratio:.2f} x, so {first.api.result.rate / f.rate if f.rate else 0:.2f} x "
            "the floor"
        )
    if report.rss:
        top = max(report.rss.values()) / 1024
        each = ", ".join(f"{kb / 1024:,.0f}" for kb in sorted(report.rss.values(), reverse=True))
        met = "met" if top <= GOAL_RSS_MB else "missed"
        lines.append(
            f"API resident memory under load, most per process: {each} MB; goal <= "
            f"{GOAL_RSS_MB:.0f} MB {met}"
        )
    return lines
