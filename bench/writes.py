"""PostgreSQL's side of the live projector: its batches' transactions, without Kafka or decoding.

    .venv/bin/python -m bench.writes [--events 300000] [--batch 10000] [--runs 2]

The benchmark's workload (bench/workload.py) is decoded and folded first (not timed), in
batches of ``--batch`` records as the live projector gets them; then each batch is written
and committed as the projector writes it (store.write_changes, synchronous_commit off), one
after the other, into a database of this run's own. Prints the time of all the transactions,
once with the read model's triggers and once with them disabled (the rows, their indexes and
foreign keys alone), alternating ``--runs`` times: the triggers' share of the write side. Where
the server tracks functions (``track_functions = all``, a superuser's setting), it also prints
each trigger function's time.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from agent_history.projector.core.changes import Changes, changes_of
from agent_history.projector.pipeline import collecting_rarely
from agent_history.projector.store import write_changes, write_transaction
from bench import environment
from bench.workload import generate

_FUNCTIONS = text(
    "SELECT funcname, calls, total_time FROM pg_stat_user_functions "
    "WHERE funcname <> 'fill_execution_rollups' ORDER BY total_time DESC"
)


def _batches(events: int, size: int) -> list[Changes]:
    records = generate(events, 6).handed_over()
    with collecting_rarely():
        return [changes_of(records[i : i + size], 1 << 20) for i in range(0, len(records), size)]


async def _write(bench: environment.Bench, batches: list[Changes], *, triggers: bool) -> str:
    """Write every batch into a new database; what it took."""
    url = bench.database_url
    await environment.create_database(bench, url)
    engine = create_async_engine(url)
    try:
        if not triggers:
            async with engine.begin() as conn:
                await conn.execute(text("ALTER TABLE agent_executions DISABLE TRIGGER USER"))
        took = []
        for changes in batches:
            start = time.perf_counter()
            async with write_transaction(engine, asynchronous_commit=True) as conn:
                await write_changes(conn, changes.agents, changes.users, changes.rows.values())
            took.append(time.perf_counter() - start)
        async with engine.connect() as conn:
            functions = (await conn.execute(_FUNCTIONS)).all() if triggers else []
    finally:
        await engine.dispose()
        await environment.drop_database(bench, url)
    took.sort()
    line = (
        f"{'with' if triggers else 'without'} triggers: {sum(took):.2f} s "
        f"(a batch: median {took[len(took) // 2] * 1e3:.0f} ms, max {took[-1] * 1e3:.0f} ms)"
    )
    return line + "".join(
        f"; {f.funcname} {f.total_time / 1e3:.2f} s in {f.calls} calls" for f in functions
    )


async def run(args: argparse.Namespace) -> None:
    batches = _batches(args.events, args.batch)
    rows = sum(len(b.rows) for b in batches)
    print(f"{len(batches)} batches of {args.batch} records ({rows} rows written in all)")
    for _ in range(args.runs):
        for triggers in (True, False):
            print(await _write(environment.from_environment(), batches, triggers=triggers))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=2)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
