"""Spool storage benchmark: the producer's segment files against SQLite in WAL mode.

    .venv/bin/python -m bench.spool [--events 200000] [--folder DIR]

Each candidate stores the same records (execution id as key, an encoded ExecutionStarted as
value): appends from one process, then from 4 processes into one folder at once, then with an
fsync per append; then reads everything back and acknowledges it. Prints one table and writes it
to docs/benchmarks-producer.md under "## Spool storage". No broker or database needed.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import shlex
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from multiprocessing.synchronize import Event as ProcessEvent
from pathlib import Path
from typing import Protocol
from uuid import uuid4

from agent_history.contract.events import ExecutionStarted, encode_event, record_key
from agent_history.producer.framing import encode_frame
from agent_history.producer.settings import FsyncPolicy
from agent_history.producer.spool import Spool
from bench import report

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks-producer.md"
PROCESSES = 4
SYNCED_EVENTS = 2_000


class Candidate(Protocol):
    def append(self, key: bytes, value: bytes) -> None: ...
    def drain(self) -> int: ...
    def close(self) -> None: ...


class Segments:
    """The producer's spool, as the publisher uses it: a frame per event, offered."""

    def __init__(self, folder: Path, fsync: FsyncPolicy) -> None:
        self._spool = Spool(folder, max_bytes=1 << 40, full_wait_s=0, fsync=fsync)

    def append(self, key: bytes, value: bytes) -> None:
        self._spool.offer(encode_frame(key, value, time.time_ns()))

    def drain(self) -> int:
        self._spool.adopt_orphans()
        done = 0
        for log in self._spool.logs():
            while frames := log.read(256 << 10):
                (segment, last) = frames[-1]
                size = sum(frame.size for _, frame in frames)
                self._spool.acknowledge(log, (segment, last.end), len(frames), size)
                done += len(frames)
        return done

    def close(self) -> None:
        self._spool.close()


class Sqlite:
    """One database per folder, shared by its processes; a row per event, autocommit."""

    def __init__(self, folder: Path, fsync: FsyncPolicy) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(folder / "spool.db", isolation_level=None, timeout=60)
        if self._db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            self._db.execute("PRAGMA journal_mode=WAL")
        # OFF leaves each commit in the OS (it survives the process); FULL fsyncs every commit.
        self._db.execute(f"PRAGMA synchronous={'FULL' if fsync == 'always' else 'OFF'}")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS spool (id INTEGER PRIMARY KEY, at INTEGER, key BLOB,"
            " value BLOB)"
        )

    def append(self, key: bytes, value: bytes) -> None:
        self._db.execute(
            "INSERT INTO spool (at, key, value) VALUES (?, ?, ?)", (time.time_ns(), key, value)
        )

    def drain(self) -> int:
        done, after = 0, 0
        select = "SELECT id, key, value FROM spool WHERE id > ? ORDER BY id LIMIT 500"
        while rows := self._db.execute(select, (after,)).fetchall():
            after = rows[-1][0]
            self._db.execute("DELETE FROM spool WHERE id <= ?", (after,))
            done += len(rows)
        return done

    def close(self) -> None:
        self._db.close()


CANDIDATES: dict[str, Callable[[Path, FsyncPolicy], Candidate]] = {
    "segment files": Segments,
    "SQLite WAL": Sqlite,
}


def _record() -> tuple[bytes, bytes]:
    eid = uuid4()
    event = ExecutionStarted.model_validate(
        {
            "specversion": "1.0",
            "id": uuid4(),
            "source": "bench/spool",
            "subject": eid,
            "time": datetime.now(UTC),
            "data": {
                "execution_id": eid,
                "agent_id": uuid4(),
                "user_id": uuid4(),
                "input_data": {"prompt": "Summarise the quarterly report in five bullets."},
                "agent_name": "Research Assistant",
            },
        }
    )
    return record_key(eid), encode_event(event)


def _append_timed(name: str, folder: Path, fsync: FsyncPolicy, events: int) -> list[int]:
    """Each append's duration in ns."""
    candidate: Candidate = CANDIDATES[name](folder, fsync)
    key, value = _record()
    clock, durations = time.perf_counter_ns, [0] * events
    for n in range(events):
        began = clock()
        candidate.append(key, value)
        durations[n] = clock() - began
    candidate.close()
    return durations


def _worker(name: str, folder: Path, events: int, go: ProcessEvent) -> list[int]:
    go.wait()
    return _append_timed(name, folder, "never", events)


def _in_processes(name: str, folder: Path, events: int) -> tuple[list[int], float]:
    CANDIDATES[name](folder, "never").close()  # created before the processes share it
    spawn = multiprocessing.get_context("spawn")
    go = spawn.Manager().Event()
    with spawn.Pool(PROCESSES) as pool:
        jobs = [pool.apply_async(_worker, (name, folder, events, go)) for _ in range(PROCESSES)]
        time.sleep(2.0)  # the workers import and wait
        began = time.perf_counter()
        go.set()
        durations = [d for job in jobs for d in job.get()]
        return durations, time.perf_counter() - began


def _cells(what: str, durations: list[int], seconds: float, how: str) -> list[str]:
    ordered = sorted(durations)
    p50, p99 = (ordered[int(q * (len(ordered) - 1))] / 1000 for q in (0.5, 0.99))
    rate = report.per_second(len(durations), seconds)
    return [what, f"{p50:.1f}", f"{p99:.1f}", f"{ordered[-1] / 1000:,.0f}", rate, how]


def measure(name: str, root: Path, events: int) -> list[list[str]]:
    rows = []
    folder = root / name.replace(" ", "-")
    began = time.perf_counter()
    durations = _append_timed(name, folder, "never", events)
    seconds = time.perf_counter() - began
    rows.append(_cells(f"{name}: append, 1 process", durations, seconds, f"{events:,} appends"))
    reader = CANDIDATES[name](folder, "never")
    began = time.perf_counter()
    drained = reader.drain()
    rate = report.per_second(drained, time.perf_counter() - began)
    reader.close()
    rows.append([f"{name}: read + acknowledge", "", "", "", rate, f"{drained:,} events"])
    durations, seconds = _in_processes(
        name, folder.with_name(f"{folder.name}-shared"), events // PROCESSES
    )
    how = f"{PROCESSES} processes x {events // PROCESSES:,} appends into one folder"
    rows.append(_cells(f"{name}: append, {PROCESSES} processes", durations, seconds, how))
    began = time.perf_counter()
    durations = _append_timed(
        name, folder.with_name(f"{folder.name}-synced"), "always", SYNCED_EVENTS
    )
    seconds = time.perf_counter() - began
    how = f"{SYNCED_EVENTS:,} appends, each fsynced before it returns"
    rows.append(_cells(f"{name}: append, fsync always", durations, seconds, how))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--folder", type=Path, default=None, help="where to write (a temp dir)")
    parser.add_argument("--no-doc", action="store_true", help=f"do not write {DOC.name}")
    args = parser.parse_args()
    logging.getLogger("agent_history.producer").setLevel(logging.ERROR)  # "adopted ..." is expected
    root = Path(tempfile.mkdtemp(prefix="bench-spool-", dir=args.folder))
    try:
        rows = [row for name in CANDIDATES for row in measure(name, root, args.events)]
        machine = report.describe_host(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    headers = ("measurement", "p50 µs", "p99 µs", "max µs", "events/s", "how")
    lines = report.table(headers, rows)
    print("\n".join(lines))
    command = shlex.join(["python", "-m", "bench.spool", *sys.argv[1:]])
    section = "\n".join(
        ["## Spool storage", "", f"`{command}`, one run. Machine: {machine}.", "", *lines, ""]
    )
    if not args.no_doc:
        report.write_section(DOC, section)


if __name__ == "__main__":
    main()
