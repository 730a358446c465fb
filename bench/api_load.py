"""Load generators for the API benchmark, each in a process of its own: closed loops, and
one open loop at a constant rate (``paced_load``).

HTTP: wrk (Debian's package, installed when missing and running as root) on one thread, so
on one core; without it, an asyncio HTTP/1.1 client on uvloop in a worker process. The
database: the same statements through asyncpg, also from a worker process. Every one runs
``connections`` loops for ``seconds``, each sending its next request when the last answered,
and, like wrk, counts the requests that completed within that time (in-flight ones at the end
are dropped).
"""

from __future__ import annotations

import asyncio
import math
import os
import resource
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import asyncpg
import uvloop

# wrk's summary, machine-readable: requests, microseconds, p50 and p99 in µs, errors.
_WRK_SCRIPT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %d %d %d\\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout + e.status))
end
"""


@dataclass(frozen=True)
class Result:
    requests: int  # completed within the time, errors included
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int  # non-2xx answers, failed connections, reads or writes, timeouts
    client_cpu: float  # CPU seconds the load generator used

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


@dataclass(frozen=True)
class Statements:
    """What the API sent to the database for one request: its transaction and statements."""

    isolation: str | None  # asyncpg's name, e.g. "repeatable_read"; None: the server default
    readonly: bool
    # False: each statement ran on its own (autocommit), with no BEGIN / COMMIT around them.
    transaction: bool
    statements: tuple[tuple[str, tuple[Any, ...]], ...]


def find_wrk() -> str | None:
    """wrk's path, installing Debian's package first when it is missing and we are root."""
    if (path := shutil.which("wrk")) is None and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-q", "wrk"]
        if subprocess.run(install, env=env, capture_output=True, check=False).returncode:
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, check=False)
            subprocess.run(install, env=env, capture_output=True, check=False)
        path = shutil.which("wrk")
    return path


async def wrk(binary: str, url: str, token: str, connections: int, seconds: int) -> Result:
    """``wrk -t1`` (one thread: one core) against ``url`` with the bearer token."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(_WRK_SCRIPT)
        script.flush()
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        process = await asyncio.create_subprocess_exec(
            *(binary, "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "120s"),
            *("-s", script.name, "-H", f"Authorization: Bearer {token}", url),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await process.communicate()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    lines = [line for line in out.decode().splitlines() if line.startswith("RESULT ")]
    if process.returncode or not lines:
        raise RuntimeError(f"wrk failed ({process.returncode}): {err.decode()}{out.decode()}")
    requests, micros, p50, p99, errors = (int(v) for v in lines[-1].split()[1:])
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return Result(requests, micros / 1e6, p50 / 1000, p99 / 1000, errors, cpu)


async def _answer(reader: asyncio.StreamReader) -> bytes:
    """The head of the next HTTP/1.1 answer on ``reader``, its body read past (StopIteration
    without a Content-Length)."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    await reader.readexactly(length)
    return head


def http_load(
    host: str, port: int, target: str, token: str, connections: int, seconds: float
) -> Result:
    """In a worker process: ``connections`` keep-alive connections GETting ``target``."""
    request = (
        f"GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n\r\n"
    ).encode()

    async def loop(record: Callable[[float | None, bool], None], deadline: float) -> None:
        reader = writer = None
        while time.perf_counter() < deadline:
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(host, port, limit=1 << 24)
                assert reader is not None
                began = time.perf_counter()
                writer.write(request)
                head = await _answer(reader)
                record(time.perf_counter() - began, head[9:12] == b"200")
            except (OSError, asyncio.IncompleteReadError, StopIteration):
                record(None, False)
                if writer is not None:
                    writer.close()
                reader = writer = None
                await asyncio.sleep(0.05)
        if writer is not None:
            writer.close()

    return uvloop.run(_drive(loop, connections, seconds))


@dataclass(frozen=True)
class Paced:
    """An open-loop measurement: requests sent on a fixed schedule, whatever the answers do."""

    offered: float  # requests per second asked for
    seconds: float
    sent: int
    answered: int
    p50_ms: float  # from each request's intended send time to its whole answer
    p99_ms: float
    max_ms: float
    errors: int
    late_p99_ms: float  # how late the generator itself sent (already inside the latencies)
    client_cpu: float  # CPU seconds the generator used
    connections: int  # keep-alive connections it needed


def paced_load(host: str, port: int, target: str, token: str, rate: float, seconds: float) -> Paced:
    """In a worker process: GET ``target`` ``rate`` times a second for ``seconds``, open loop.

    Request i is due at start + i / rate and is sent then on an idle keep-alive connection (a
    new one if every one is busy), never held back by a slow answer; its latency runs from when
    it was due, not from when it went out, so a stall of the server (or of this generator)
    counts in full for every request that waited behind it (no coordinated omission).
    """
    request = (
        f"GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {token}\r\n\r\n"
    ).encode()

    async def run() -> Paced:
        Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]
        idle: list[Connection] = []
        opened = 0
        latencies: list[float] = []
        late: list[float] = []
        errors = 0  # answers other than 200

        async def connect() -> Connection:
            nonlocal opened
            opened += 1
            return await asyncio.open_connection(host, port, limit=1 << 24)

        # Enough connections for the usual overlap, opened before the clock starts.
        idle.extend([await connect() for _ in range(16)])

        async def one(due: float) -> None:
            nonlocal errors
            conn, reused = (idle.pop(), True) if idle else (await connect(), False)
            late.append(time.perf_counter() - due)
            while True:
                reader, writer = conn
                try:
                    writer.write(request)
                    head = await _answer(reader)
                    break
                except (OSError, asyncio.IncompleteReadError, StopIteration):
                    writer.close()
                    if not reused:
                        return  # unanswered: counted as an error below
                    # The server closed a keep-alive connection that sat idle (uvicorn after
                    # 5 s): sent again on a new one, as HTTP clients do with a GET, the time
                    # still running from when the request was due.
                    conn, reused = await connect(), False
            latencies.append(time.perf_counter() - due)
            errors += head[9:12] != b"200"
            idle.append(conn)

        cpu = time.process_time()
        count = int(rate * seconds)
        pending: set[asyncio.Task[None]] = set()
        start = time.perf_counter() + 0.05
        for i in range(count):
            due = start + i / rate
            if (wait := due - time.perf_counter()) > 0:
                await asyncio.sleep(wait)
            task = asyncio.create_task(one(due))
            pending.add(task)
            task.add_done_callback(pending.discard)
        if pending:
            await asyncio.wait(pending, timeout=120)
        used = time.process_time() - cpu
        for _, writer in idle:
            writer.close()
        latencies.sort()
        late.sort()
        return Paced(
            offered=rate,
            seconds=seconds,
            sent=count,
            answered=len(latencies),
            p50_ms=percentile(latencies, 50) * 1000,
            p99_ms=percentile(latencies, 99) * 1000,
            max_ms=(latencies[-1] if latencies else 0.0) * 1000,
            errors=errors + count - len(latencies),
            late_p99_ms=percentile(late, 99) * 1000,
            client_cpu=used,
            connections=opened,
        )

    return uvloop.run(run())


def db_load(dsn: str, work: Statements, connections: int, seconds: float) -> Result:
    """In a worker process: ``connections`` asyncpg connections running ``work``'s
    statements, each request in a transaction like the API's, or none where it has none."""

    async def loop(record: Callable[[float | None, bool], None], deadline: float) -> None:
        conn: asyncpg.Connection | None = None
        try:
            while time.perf_counter() < deadline:
                try:
                    if conn is None:
                        conn = await asyncpg.connect(dsn)
                    began = time.perf_counter()
                    if work.transaction:
                        async with conn.transaction(
                            isolation=work.isolation, readonly=work.readonly
                        ):
                            for sql, args in work.statements:
                                await conn.fetch(sql, *args)
                    else:
                        for sql, args in work.statements:
                            await conn.fetch(sql, *args)
                    record(time.perf_counter() - began, True)
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
                    record(None, False)
                    if conn is not None:
                        conn.terminate()
                    conn = None
                    await asyncio.sleep(0.05)
        finally:
            if conn is not None:
                conn.terminate()

    return uvloop.run(_drive(loop, connections, seconds))


async def _drive(
    loop: Callable[[Callable[[float | None, bool], None], float], Coroutine[Any, Any, None]],
    connections: int,
    seconds: float,
) -> Result:
    latencies: list[float] = []
    errors = unanswered = 0
    cpu = time.process_time()
    started = time.perf_counter()
    deadline = started + seconds

    def record(latency: float | None, ok: bool) -> None:
        """A request that ended; latency None when it got no answer at all."""
        nonlocal errors, unanswered
        if time.perf_counter() <= deadline:
            if latency is None:
                unanswered += 1
            else:
                latencies.append(latency)
            errors += not ok

    tasks = [asyncio.create_task(loop(record, deadline)) for _ in range(connections)]
    await asyncio.wait(tasks, timeout=seconds + 0.001)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    latencies.sort()
    return Result(
        requests=len(latencies) + unanswered,
        seconds=seconds,
        p50_ms=percentile(latencies, 50) * 1000,
        p99_ms=percentile(latencies, 99) * 1000,
        errors=errors,
        client_cpu=time.process_time() - cpu,
    )


def percentile(ordered: list[float], pct: float) -> float:
    """Nearest rank; 0 for no values."""
    return ordered[max(0, math.ceil(len(ordered) * pct / 100) - 1)] if ordered else 0.0
