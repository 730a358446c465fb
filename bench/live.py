"""The services as processes of their own (`agent-history projector`), timed draining a topic."""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import sys
import tempfile
import time
from asyncio.subprocess import Process
from collections.abc import AsyncIterator, Iterable
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import httpx
from pydantic_settings import BaseSettings
from sqlalchemy.engine import make_url

from agent_history.contract.settings import environment_of
from agent_history.projector.checkpoints import read_checkpoints
from agent_history.projector.settings import ProjectorSettings
from agent_history.read_model.db import make_engine
from bench import environment

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
LOGS = Path(tempfile.gettempdir()) / "agent-history-bench"


@asynccontextmanager
async def service(
    command: list[str],
    settings: BaseSettings,
    profile: Path | None = None,
    module: str = "agent_history.server",
) -> AsyncIterator[Process]:
    """``agent-history COMMAND`` (``python -m MODULE COMMAND``) running with ``settings``;
    SIGINT and a wait on the way out.

    Its output goes to a file under LOGS. With ``profile``, py-spy (installed by hand, not a
    project dependency) samples it into that file as raw stacks.
    """
    log = LOGS / f"{command[0]}-{os.getpid()}-{time.monotonic_ns()}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", module, *command),
            env=environment_of(settings),
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
        )
    spy = None
    if profile is not None:
        spy = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).with_name("py-spy")),
            *("record", "--pid", str(process.pid), "--rate", "200", "--format", "raw"),
            *("--output", str(profile), "--nonblocking"),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
    try:
        yield process
    finally:
        for child in (spy, process):
            if child is not None and child.returncode is None:
                child.send_signal(signal.SIGINT)
                try:
                    await asyncio.wait_for(child.wait(), 30)
                except TimeoutError:
                    child.kill()
                    await child.wait()


def _stat(path: Path) -> tuple[str, list[str]] | None:
    """A /proc/PID/stat file: the process's executable name and the fields after it (the
    state first); None once the process is gone."""
    try:
        line = path.read_text()
    except OSError:
        return None
    return line[line.index("(") + 1 : line.rindex(")")], line.rsplit(")", 1)[1].split()


def _all_stats() -> dict[int, tuple[str, list[str]]]:
    """Every process's /proc/PID/stat, by pid."""
    found = {}
    for path in Path("/proc").glob("[0-9]*/stat"):
        if (stat := _stat(path)) is not None:  # else gone meanwhile
            found[int(path.parent.name)] = stat
    return found


def _cpu_with_waited_children(fields: list[str]) -> float:
    """utime, stime, cutime and cstime: the process's own and what its exited children used."""
    return sum(int(f) for f in fields[11:15]) / _CLOCK_TICKS


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time so far of a process and of its children's (say, uvicorn's
    workers)."""
    ticks = (
        int(fields[11]) + int(fields[12])
        for p, (_, fields) in _all_stats().items()
        if pid in (p, int(fields[1]))
    )
    return sum(ticks) / _CLOCK_TICKS


def _own_cpu_seconds(pid: int) -> float:
    """User plus system CPU time so far of one process and of its children it has waited for,
    such as replay's loader processes (one file read: cheap to poll)."""
    stat = _stat(Path(f"/proc/{pid}/stat"))
    return 0.0 if stat is None else _cpu_with_waited_children(stat[1])


def busy_jiffies() -> tuple[int, int]:
    """(busy, total) CPU jiffies of the whole machine so far."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


# The servers a benchmark uses, by the name of their executable (/proc/PID/comm).
SERVERS = {"postgres": "PostgreSQL", "java": "Kafka broker"}


def _server_ports() -> dict[str, int]:
    """The port of the database server and of the (first) broker this benchmark talks to."""
    bench = environment.from_environment()
    broker = bench.kafka.split(",")[0]
    kafka = int(broker.rsplit(":", 1)[1]) if ":" in broker else 9092  # aiokafka's default
    return {"postgres": make_url(bench.admin_url).port or 5432, "java": kafka}


def _listening(ports: set[int], candidates: Iterable[int]) -> dict[int, int]:
    """Which of ``candidates`` (pids) listens on each of ``ports`` (TCP), where this machine
    shows it."""
    sockets: dict[str, int] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                port = int(fields[1].rsplit(":", 1)[1], 16)
                if fields[3] == "0A" and port in ports:  # 0A: LISTEN
                    sockets[f"socket:[{fields[9]}]"] = port
    owners: dict[int, int] = {}
    for pid in candidates:
        with suppress(OSError):  # gone meanwhile, or not ours to read
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with suppress(OSError):  # closed meanwhile
                    if (owned := sockets.get(os.readlink(fd))) is not None:
                        owners.setdefault(owned, pid)  # the lowest pid: the parent
    return owners


@functools.cache
def _server_pids() -> dict[str, int]:
    """The process of each server this benchmark talks to, by executable: found once, so that
    every figure of a run is counted the same way. A server whose port's listener cannot be
    seen (another user's, another machine's) or is not the server itself (a container's
    proxy) has none."""
    ports = _server_ports()
    stats = _all_stats()
    candidates = sorted(pid for pid, (comm, _) in stats.items() if comm in SERVERS)
    listening = _listening(set(ports.values()), candidates)
    return {
        executable: pid
        for executable, port in ports.items()
        if (pid := listening.get(port)) is not None and stats[pid][0] == executable
    }


def servers_cpu_seconds() -> dict[str, float]:
    """CPU seconds so far of the database server and the broker this benchmark uses, by server:
    the process listening on its port and that process's children, each with what its exited
    children used (a backend that ended meanwhile counts in its postmaster's). Where that
    process is not found (_server_pids), every process of the server's executable here, and
    the server's name says so."""
    owners = _server_pids()
    names = {
        executable: name if executable in owners else f"{name} (every {executable} process)"
        for executable, name in SERVERS.items()
    }
    used = dict.fromkeys(names.values(), 0.0)
    for pid, (comm, fields) in _all_stats().items():
        for executable, name in names.items():
            owner = owners.get(executable)
            if (owner is None and comm == executable) or owner in (pid, int(fields[1])):
                used[name] += _cpu_with_waited_children(fields)
    return used


def used_since(before: dict[str, float]) -> dict[str, float]:
    """Each server's CPU seconds since ``before`` (servers_cpu_seconds())."""
    return {name: cpu - before[name] for name, cpu in servers_cpu_seconds().items()}


def describe_cpu(parties: dict[str, float]) -> str:
    """``projector 20.5 s, PostgreSQL 18.2 s, Kafka broker 2.1 s``."""
    return ", ".join(f"{name} {cpu:.1f} s" for name, cpu in parties.items())


def rss_bytes(pid: int) -> int:
    """The resident set size of a process now (VmRSS); 0 once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def tree_rss_bytes(pid: int) -> list[int]:
    """The resident set sizes of a process and of its children now; empty once it is gone."""
    children = []
    for listing in Path(f"/proc/{pid}/task").glob("*/children"):
        with suppress(OSError):
            children += [int(c) for c in listing.read_text().split()]
    return [rss for p in (pid, *children) if (rss := rss_bytes(p))]


@dataclass(frozen=True)
class Memory:
    """A process's resident set size, sampled: (seconds since its start, bytes); for a process
    with children, their sum, and ``largest`` the most any one of them held."""

    samples: list[tuple[float, int]]
    largest: int = 0

    @property
    def peak(self) -> int:
        return max((rss for _, rss in self.samples), default=0)

    def describe(self, points: int = 5) -> str:
        """``max 96 MB; 41, 90, 95, 96, 93 MB at 0, 25, 50, 75, 100 % of the time``."""
        if not self.samples:
            return "RSS not sampled"
        end = self.samples[-1][0]
        shares = [i / (points - 1) for i in range(points)]
        at = [next(rss for t, rss in self.samples if t >= share * end) for share in shares]
        return (
            f"RSS max {self.peak / 2**20:.0f} MB; {', '.join(f'{b / 2**20:.0f}' for b in at)} MB "
            f"at {', '.join(f'{s:.0%}' for s in shares)} of the time"
        )


@dataclass(frozen=True)
class Drain:
    seconds: float  # from starting the process until the checkpoints cover the end offsets
    startup: float  # from starting the process until its first checkpoint
    projector_cpu: float  # CPU seconds the projector process used
    machine_busy: float  # share of all cores busy meanwhile (0..1)
    memory: Memory  # the first projector process's RSS, every poll
    servers_cpu: dict[str, float]  # CPU seconds PostgreSQL and the broker used meanwhile


async def drain(
    command: list[str],
    settings: ProjectorSettings,
    ends: dict[int, int],
    profile: Path | None = None,
    within: float = 300.0,
    processes: int = 1,
) -> Drain:
    """Start the projector (``processes`` of them, one consumer group) and time it until
    every partition's checkpoint reaches its end. ``profile`` samples the first one."""
    engine = make_engine(settings)
    first: float | None = None
    try:
        async with AsyncExitStack() as stack:
            # Autocommit: each read is a transaction of its own, none is left open in between.
            conn = await stack.enter_async_context(engine.connect())
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            busy0, total0 = busy_jiffies()
            servers0 = servers_cpu_seconds()
            start = time.perf_counter()
            started = [
                await stack.enter_async_context(
                    service(command, settings, profile if i == 0 else None)
                )
                for i in range(processes)
            ]
            samples: list[tuple[float, int]] = []
            while True:
                stored = await read_checkpoints(conn, settings.consumer_group, settings.topic)
                now = time.perf_counter()
                samples.append((now - start, rss_bytes(started[0].pid)))
                if first is None and stored:
                    first = now - start
                if all(stored.get(p, 0) >= end for p, end in ends.items() if end):
                    break
                if any(p.returncode is not None for p in started):
                    raise RuntimeError(f"a projector exited; see {LOGS}")
                if now - start > within:
                    raise TimeoutError(f"not drained within {within}s: at {stored}, want {ends}")
                await asyncio.sleep(0.05)
            busy1, total1 = busy_jiffies()
            return Drain(
                seconds=now - start,
                startup=first or 0.0,
                projector_cpu=sum(cpu_seconds(p.pid) for p in started),
                machine_busy=(busy1 - busy0) / max(1, total1 - total0),
                memory=Memory(samples),
                servers_cpu=used_since(servers0),
            )
    finally:
        await engine.dispose()


@dataclass(frozen=True)
class Run:
    seconds: float  # from starting the process until it exited
    cpu: float  # CPU seconds it and its children used
    memory: Memory  # it and its children together
    machine_busy: float  # share of all cores busy meanwhile (0..1)
    servers_cpu: dict[str, float]  # CPU seconds PostgreSQL and the broker used meanwhile


async def run_to_end(command: list[str], settings: BaseSettings, within: float = 300.0) -> Run:
    """``agent-history COMMAND`` from its start until it exits (successfully), its RSS (with its
    children's) sampled."""
    busy0, total0 = busy_jiffies()
    servers0 = servers_cpu_seconds()
    start = time.perf_counter()
    samples: list[tuple[float, int]] = []
    largest = 0
    async with service(command, settings) as process:
        cpu = 0.0
        while process.returncode is None:
            now = time.perf_counter() - start
            if rss := tree_rss_bytes(process.pid):  # empty: it exited since the last look
                samples.append((now, sum(rss)))
                largest = max(largest, *rss)
            cpu = _own_cpu_seconds(process.pid) or cpu  # its last reading before it exits
            if now > within:
                raise TimeoutError(f"{command[0]} did not finish within {within:.0f} s")
            with suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), 0.05)
        seconds = time.perf_counter() - start
        if process.returncode != 0:
            raise RuntimeError(f"{command[0]} exited with {process.returncode}; see {LOGS}")
    busy1, total1 = busy_jiffies()
    busy = (busy1 - busy0) / max(1, total1 - total0)
    return Run(seconds, cpu, Memory(samples, largest), busy, used_since(servers0))


async def api_ready(base: str, server: Process, within: float = 60.0) -> None:
    """Wait until the API ``server`` started at ``base`` answers /readyz."""
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(base_url=base) as client:
        while time.monotonic() < deadline:
            if server.returncode is not None:
                raise RuntimeError(f"the API exited ({server.returncode}); see {LOGS}")
            try:
                if (await client.get("/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise TimeoutError(f"the API at {base} did not become ready within {within:.0f} s")
