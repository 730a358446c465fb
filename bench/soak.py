"""Fault-injection soak: the scenario of tests/integration/test_faults.py at a bigger size,
with agent workers recording runs through the real producer meanwhile.

    .venv/bin/python -m bench.soak --executions 20000 --kills 10 --worker-kills 3 --seed 1

Sends a stream of executions (duplicated events, shuffled order) in phases while a projector
process runs; between phases the projector is SIGKILLed at random moments (--kills times),
the broker is stopped once for --outage-seconds (the projector and the workers carry on) and
PostgreSQL is restarted once. All the while --workers worker processes (tests/producer_worker.py)
record runs on one spool folder into the same topic; --worker-kills times one of them is
SIGKILLed at a random moment and a new one started on the folder (bench/soak_workers.py).
Then the table must equal the fold of every event of the stream, field for field; every run a
worker reported must be there with its status and agent; a killed worker may leave at most one
run it never reported (in flight); nothing is dead-lettered. Runs on the local services (started
when they are not running: the restarts need them), in a database and topics of its own that
are dropped afterwards (the database is kept when something differs). Exits 1 on any difference.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import time
import uuid

from agent_history import devservices as services
from agent_history.devservices.settings import ServicesSettings
from agent_history.producer import ProducerSettings
from agent_history.read_model.db import make_engine
from bench import environment
from bench.environment import Bench
from bench.live import LOGS
from bench.soak_workers import Crew, Tally
from tests.faults_support import Outcome, generate_stream, run_scenario, schedule


async def soak(args: argparse.Namespace) -> tuple[Outcome, Tally]:
    began = time.monotonic()

    def say(line: str) -> None:
        print(f"{time.monotonic() - began:6.1f}s {line}", flush=True)

    local = ServicesSettings()
    status = services.status(local)
    if not status.all_running:
        status = await asyncio.to_thread(services.up, local)
    bench = Bench(status.kafka_bootstrap_servers, status.database_url, uuid.uuid4().hex[:10])
    settings = bench.projector_settings(
        "soak", batch_max_records=args.batch_max_records, retry_max_seconds=1.0
    )
    rng = random.Random(args.seed)
    stream = generate_stream(rng, args.executions)
    faults = schedule(rng, args.kills, restart_kafka=True, restart_postgres=True)
    log, reports = LOGS / f"soak-{bench.run}-projector.log", LOGS / f"soak-{bench.run}-workers"
    reports.mkdir(parents=True)
    producer = ProducerSettings(
        kafka_bootstrap_servers=settings.kafka_bootstrap_servers,
        topic=settings.topic,
        spool_dir=reports / "spool",
    )
    crew = Crew(producer, reports, args.workers, args.worker_pace, say)
    print(f"{len(stream.events)} events of {args.executions} executions; faults: {faults}")
    print(f"database {settings.database_url}, topic {settings.topic}, projector log {log}")
    print(f"{args.workers} workers, {args.worker_kills} kills; reports and logs in {reports}")

    await environment.create_database(bench, settings.database_url)
    engine = make_engine(settings)
    keep = True  # unless the run gets through and the table is right
    try:
        async with environment.topics(bench, "soak"):
            # The workers' moments from a generator of their own: they run alongside.
            worker_rng = random.Random(f"{args.seed}-workers")
            await crew.start(worker_rng, args.worker_kills, args.worker_kill_gap)
            try:
                outcome = await run_scenario(
                    settings, local, engine, stream, faults, rng, log,
                    drain_within=600.0, broker_down_s=args.outage_seconds,
                    before_drain=crew.finish, say=say,
                )  # fmt: skip
            finally:
                await crew.abandon()
        tally = await crew.compare(engine, stream.agents)
        keep = bool(outcome.mismatches or tally.differences)
    finally:
        await engine.dispose()
        if keep:
            print(f"kept the database for inspection: {settings.database_url}")
        else:
            await environment.drop_database(bench, settings.database_url)
    return outcome, tally


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--executions", type=int, default=20_000)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--batch-max-records", type=int, default=500, help="the projector's batch size"
    )
    parser.add_argument("--workers", type=int, default=2, help="worker processes at a time")
    parser.add_argument("--worker-kills", type=int, default=3)
    parser.add_argument(
        "--worker-kill-gap", type=float, default=10.0, help="mean seconds between worker kills"
    )
    parser.add_argument(
        "--worker-pace",
        type=float,
        default=0.05,
        help="a worker's seconds between runs; a run's body takes as long",
    )
    parser.add_argument(
        "--outage-seconds", type=float, default=30.0, help="how long the broker is down"
    )
    args = parser.parse_args()
    # Client warnings while the broker is down are expected: say whose they are.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    outcome, tally = asyncio.run(soak(args))
    differences = [*outcome.mismatches, *tally.differences]
    differences += [f"dead-lettered: {outcome.dead_lettered}"] if outcome.dead_lettered else []
    differences += [f"dead-letter records: {outcome.dlq_records}"] if outcome.dlq_records else []
    for line in differences[:50]:
        print(line)
    print(f"{outcome.summary()} {tally.summary()} differences={len(differences)}")
    raise SystemExit(1 if differences else 0)


if __name__ == "__main__":
    main()
