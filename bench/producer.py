"""Producer benchmark: what track_execution adds to a run, with the broker up and down, and how
many events one process records, beside a plain aiokafka producer sending without waiting.

    .venv/bin/python -m bench.producer [--runs 20000] [--events 200000] [--profile FILE]

Uses the broker of AGENT_HISTORY_KAFKA_BOOTSTRAP_SERVERS, else the local services' one, and a
topic of its own (deleted at the end); "down" is a port nothing listens on. Spools go to a
temporary folder. Prints one table and writes it to docs/benchmarks-producer.md under
"## Producer".
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import shlex
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from agent_history.devservices import kafka
from agent_history.devservices.processes import quiet_port
from agent_history.devservices.settings import ServicesSettings
from agent_history.producer import ProducerSettings, Publisher
from agent_history.producer.kafka import kafka_options
from bench import report
from bench.producer_runs import (
    GOAL_P99_MS,
    GOAL_RATE,
    added_by_aiokafka,
    added_by_tracking,
    added_by_tracking_sync,
    quantiles,
    record_with_aiokafka,
    record_with_publisher,
)
from bench.report import Row
from bench.spool import DOC

_log = logging.getLogger("bench.producer")


def _bootstrap() -> str:
    env = os.environ.get("AGENT_HISTORY_KAFKA_BOOTSTRAP_SERVERS")
    return env or kafka.bootstrap_servers(ServicesSettings())


@asynccontextmanager
async def _topic(bootstrap: str) -> AsyncIterator[str]:
    name = f"bench-producer-{uuid.uuid4().hex[:10]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, 6, 1)])
        yield name
        await admin.delete_topics([name])
    finally:
        await admin.close()


def _latency_row(what: str, durations: list[float], how: str, goal: bool = True) -> Row:
    p50, p99, worst = quantiles(durations)
    return Row(
        what,
        f"p50 {p50:.3f} ms, p99 {p99:.3f} ms (max {worst:.1f})",
        goal=f"p99 <= {GOAL_P99_MS} ms" if goal else "",
        met=p99 <= GOAL_P99_MS if goal else None,
        how=how,
    )


async def measure(args: argparse.Namespace, folder: Path) -> list[Row]:
    bootstrap = _bootstrap()
    rows: list[Row] = []
    async with _topic(bootstrap) as topic:
        up = ProducerSettings(kafka_bootstrap_servers=bootstrap, topic=topic)

        def spooling_in(name: str, settings: ProducerSettings = up) -> ProducerSettings:
            """A spool folder for each measurement: none inherits another's backlog."""
            return settings.model_copy(update={"spool_dir": folder / name})

        down = up.model_copy(update={"kafka_bootstrap_servers": f"127.0.0.1:{quiet_port()}"})
        runs = f"{args.runs:,} runs after {args.runs // 10:,} to warm up"
        how = f"{runs}, body empty, the shipper on the same loop (a sleep(0) between runs)"
        for state, settings in (("up", up), ("down", down)):
            async with Publisher(spooling_in(state, settings)) as publisher:
                durations = await added_by_tracking(publisher, args.runs)
                rows.append(_latency_row(f"track_execution adds, Kafka {state}", durations, how))
                paced = await added_by_tracking(publisher, args.runs // 4, pace=0.002)
                what = f"track_execution adds, Kafka {state}, one run every 2 ms"
                rows.append(_latency_row(what, paced, f"{args.runs // 4:,} runs, paced"))
        with Publisher(spooling_in("sync")) as publisher:
            durations = await asyncio.to_thread(added_by_tracking_sync, publisher, args.runs)
        how = f"{runs}; `with Publisher(...)`: the shipper on a thread of its own"
        rows.append(_latency_row("plain `with track_execution`, Kafka up", durations, how))
        producer = AIOKafkaProducer(**kafka_options(up))
        await producer.start()
        try:
            durations = await added_by_aiokafka(producer, topic, args.runs)
            how = f"{runs}: build and encode the event, `await producer.send(...)`, twice"
            rows.append(_latency_row("reference: aiokafka send, no wait", durations, how, False))
            # The same after a sleep, as the paced runs: what this machine's caches cost a bare
            # send, against which the paced rows above are to be read.
            paced = await added_by_aiokafka(producer, topic, args.runs // 4, pace=0.002)
            what = "reference: aiokafka send, no wait, one run every 2 ms"
            rows.append(_latency_row(what, paced, f"{args.runs // 4:,} runs, paced", False))
            raw = await record_with_aiokafka(producer, topic, args.events)
        finally:
            await producer.stop()
        async with Publisher(spooling_in("rate")) as publisher:
            mine = await record_with_publisher(publisher, args.events, args.profile)
        rows += _rate_rows(args.events, mine, raw)
    return rows


def _rate_rows(events: int, mine: tuple[float, float], raw: tuple[float, float]) -> list[Row]:
    (recorded, shipped), (sent, acked) = mine, raw
    return [
        Row(
            "recording, one process",
            f"{events:,} events in {recorded:.2f} s",
            report.per_second(events, recorded),
            f">= {GOAL_RATE:,} events/s",
            events / recorded >= GOAL_RATE,
            f"`await publisher.publish_started(data)` in a loop, Kafka up; "
            f"{raw_ratio(recorded, sent)} the aiokafka send rate",
        ),
        Row(
            "recorded and acknowledged by the broker",
            f"{shipped:.2f} s",
            report.per_second(events, shipped),
            how=f"the same events until `flush()` returns; {raw_ratio(shipped, acked)} "
            "aiokafka's sends until acknowledged",
        ),
        Row(
            "reference: aiokafka send, no wait",
            f"{events:,} events in {sent:.2f} s",
            report.per_second(events, sent),
            how="build and encode each event, `await producer.send(...)` without waiting for "
            "the acknowledgement; the shipper's producer options (idempotent, acks=all, "
            "linger_ms=5, batches up to 256 KiB)",
        ),
        Row(
            "reference: aiokafka, until acknowledged",
            f"{acked:.2f} s",
            report.per_second(events, acked),
            how="the same sends until `flush()` returns",
        ),
    ]


def raw_ratio(ours: float, theirs: float) -> str:
    """Our rate as a multiple of aiokafka's, from the two durations."""
    return f"{theirs / ours:.2f} x"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20_000)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--profile", type=Path, help="pyinstrument (installed by hand) text here")
    parser.add_argument("--no-doc", action="store_true", help=f"do not write {DOC.name}")
    args = parser.parse_args()
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # "down" reconnects all the time
    if args.profile:
        importlib.import_module("pyinstrument")  # fail before the run, not after
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-producer-") as folder:
        rows = asyncio.run(measure(args, Path(folder)))
        machine = report.describe_host(Path(folder))
    # Other work on the machine moves tail latencies most: say how busy it was.
    machine += f"; load average {load:.1f} before the run, {os.getloadavg()[0]:.1f} after"
    report.show(rows, "Producer", machine)
    command = shlex.join(["python", "-m", "bench.producer", *sys.argv[1:]])
    lines = report.table(report.HEADERS, (row.cells() for row in rows))
    heading = ["## Producer", "", f"`{command}`, one run. Machine: {machine}.", ""]
    if not args.no_doc:
        report.write_section(DOC, "\n".join([*heading, *lines, ""]))


if __name__ == "__main__":
    main()
