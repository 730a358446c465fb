"""Fault-injection soak: the scenario of tests/integration/test_faults.py, at a bigger size.

    .venv/bin/python -m bench.soak --executions 20000 --kills 10 --seed 1

Sends a stream of executions (duplicated events, shuffled order) in phases while a projector
process runs; between phases the projector is SIGKILLed at random moments (--kills times),
the broker is restarted once and PostgreSQL once. Then the table must equal the fold of every
event sent, field for field, with nothing dead-lettered. Runs on the local services (started
when they are not running: the restarts need them), in a database and topics of its own that
are dropped afterwards (the database is kept when something differs). Exits 1 on any mismatch.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import uuid

from agent_history import devservices as services
from agent_history.devservices.settings import ServicesSettings
from agent_history.read_model.db import make_engine
from bench import environment
from bench.environment import Bench
from bench.live import LOGS
from tests.faults_support import Outcome, generate_stream, run_scenario, schedule


async def soak(args: argparse.Namespace) -> Outcome:
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
    LOGS.mkdir(parents=True, exist_ok=True)
    log = LOGS / f"soak-{bench.run}-projector.log"
    print(f"{len(stream.events)} events of {args.executions} executions; faults: {faults}")
    print(f"database {settings.database_url}, topic {settings.topic}, projector log {log}")

    await environment.create_database(bench, settings.database_url)
    engine = make_engine(settings)
    keep = True  # unless the run gets through and the table is right
    try:
        async with environment.topics(bench, "soak"):
            outcome = await run_scenario(
                settings, local, engine, stream, faults, rng, log, drain_within=600.0, say=print
            )
        keep = bool(outcome.mismatches)
    finally:
        await engine.dispose()
        if keep:
            print(f"kept the database for inspection: {settings.database_url}")
        else:
            await environment.drop_database(bench, settings.database_url)
    return outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--executions", type=int, default=20_000)
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--batch-max-records", type=int, default=500, help="the projector's batch size"
    )
    args = parser.parse_args()
    # Client warnings while the broker is down are expected: say whose they are.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    outcome = asyncio.run(soak(args))
    for line in outcome.mismatches[:50]:
        print(line)
    print(outcome.summary())
    clean = not outcome.mismatches and outcome.dead_lettered == outcome.dlq_records == 0
    raise SystemExit(0 if clean else 1)


if __name__ == "__main__":
    main()
