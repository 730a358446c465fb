"""An agent worker as a process of its own, for the producer's fault tests: records runs with
track_execution for a while and reports each one as a JSON line, flushed, so that a test can
kill it at any moment and still know which runs it recorded.

    python -m tests.producer_worker REPORT [--seconds S] [--pace S] [--busy S] [--thread-every N]
                                           [--agent ID]

Settings from the environment (AGENT_HISTORY_*). SIGTERM ends the recording early (then the
flush and the last line as usual). Each line: the run's execution id, the status
it must end up with, the time recording added to it (enter + exit) and how many events wait in
the spool after it; the last line, after a flush, whether the broker got everything, and the
spool's stats.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import signal
import sys
import time
import uuid
from pathlib import Path
from typing import IO, Any

from agent_history.producer import ProducerSettings, Publisher, track_execution

ENDINGS = ("completed", "completed", "completed", "failed", "cancelled")
FLUSH_S = 120.0
AGENT = uuid.UUID("00000000-0000-4000-8000-00000000a9e7")


def record_run(
    publisher: Publisher, n: int, ending: str, agent: uuid.UUID, busy: float
) -> dict[str, Any]:
    """One run, entered and exited by hand so that only the recording is timed; its body
    takes ``busy`` seconds."""
    tracking = track_execution(agent, uuid.uuid4(), {"n": n}, publisher=publisher)
    began = time.perf_counter()
    run = tracking.__enter__()
    entered = time.perf_counter()
    if busy:
        time.sleep(busy)
    run.output = {"n": n}
    error = _error(ending)
    ending_at = time.perf_counter()
    tracking.__exit__(type(error) if error else None, error, None)
    ended = time.perf_counter()
    return _line(tracking, ending, entered - began + ended - ending_at)


async def record_run_async(
    publisher: Publisher, n: int, ending: str, agent: uuid.UUID, busy: float
) -> dict[str, Any]:
    tracking = track_execution(agent, uuid.uuid4(), {"n": n}, publisher=publisher)
    began = time.perf_counter()
    run = await tracking.__aenter__()
    entered = time.perf_counter()
    if busy:
        await asyncio.sleep(busy)
    run.output = {"n": n}
    error = _error(ending)
    ending_at = time.perf_counter()
    await tracking.__aexit__(type(error) if error else None, error, None)
    ended = time.perf_counter()
    return _line(tracking, ending, entered - began + ended - ending_at)


def _error(ending: str) -> BaseException | None:
    return {"failed": ValueError("tool failed"), "cancelled": asyncio.CancelledError()}.get(ending)


def _line(tracking: track_execution, ending: str, seconds: float) -> dict[str, Any]:
    return {"id": str(tracking.run.execution_id), "status": ending, "added_s": seconds}


def _write(out: IO[str], line: dict[str, Any]) -> None:
    out.write(json.dumps(line) + "\n")
    out.flush()


async def work(args: argparse.Namespace) -> None:
    settings = ProducerSettings()
    report, thread_every, run = args.report, args.thread_every, (args.agent, args.busy)
    stopping = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
    with report.open("a") as out:
        async with Publisher(settings) as publisher:
            deadline, n = time.monotonic() + args.seconds, 0
            while time.monotonic() < deadline and not stopping.is_set():
                ending = ENDINGS[n % len(ENDINGS)]
                try:
                    if thread_every and n % thread_every == 0:
                        line = await asyncio.to_thread(record_run, publisher, n, ending, *run)
                    else:
                        line = await record_run_async(publisher, n, ending, *run)
                except BaseException as error:  # recording must never raise into a run
                    line = {"raised": repr(error)}
                _write(out, {**line, "spooled": publisher.spool_stats().events})
                n += 1
                await asyncio.sleep(args.pace)
            flushed = await publisher.flush(FLUSH_S)
            _write(out, {"flushed": flushed, "stats": dataclasses.asdict(publisher.spool_stats())})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("report", type=Path)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--pace", type=float, default=0.02, help="seconds between runs")
    parser.add_argument("--busy", type=float, default=0.0, help="seconds a run's body takes")
    parser.add_argument("--thread-every", type=int, default=7, help="every Nth run from a thread")
    parser.add_argument("--agent", type=uuid.UUID, default=AGENT, help="the runs' agent id")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(asctime)s %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # one line per reconnect attempt
    asyncio.run(work(args))


if __name__ == "__main__":
    main()
