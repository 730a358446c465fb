"""What the read model costs in bytes: per row, per index entry, and in WAL per event.

The inputs of docs/scaling.md that no speed benchmark prints. Each load goes into a database
of the run's own on the local services (no Kafka: the records are handed over):

- **writes**: bench/workload.py's backlog, decoded and folded by the projector's own code
  (``changes_of``) and written with its own statements (``write_changes``) in batches of
  10,000 records; then one heartbeat for each of 10,000 of its runs, in one batch. Three
  times: with every trigger, without the rollup triggers, without the count triggers either.
  WAL is how far ``pg_current_wal_lsn()`` moved meanwhile: the whole server's, so run it on
  services nothing else writes to. After the first load, each relation's size per execution:
  the table as upserts leave it.
- **rows**: bench/api_data.py's rows (model, tokens, cost; one big agent) COPYed into the
  migrated table, indexes rebuilt, then each relation's size per execution: packed rows.
- **the topic**: an event's bytes, raw and compressed in batches as a producer could.

About a minute for the defaults; sizes and WAL bytes do not depend on the machine's load.
"""

from __future__ import annotations

import argparse
import asyncio
import lzma
import time
import zlib
from collections.abc import Awaitable, Sequence
from itertools import count
from typing import TypeVar
from uuid import uuid4

import asyncpg
import orjson
from sqlalchemy.ext.asyncio import AsyncEngine

from agent_history.projector.core.changes import changes_of
from agent_history.projector.core.names import StoredNames
from agent_history.projector.store import write_changes, write_transaction
from agent_history.read_model.db import DatabaseSettings, make_engine
from bench.api_data import generate as generate_rows
from bench.api_rows import Shape
from bench.environment import (
    PARTITIONS,
    Bench,
    asyncpg_dsn,
    create_database,
    drop_database,
    from_environment,
)
from bench.report import table
from bench.workload import Record, Workload
from bench.workload import generate as generate_events

BATCH = 10_000
T = TypeVar("T")
_ROLLUPS = ("roll_up_inserted_executions", "roll_up_updated_executions")
_COUNTS = ("count_inserted_executions", "count_updated_executions")
# Every relation of the read model that grows, with its indexes and TOAST.
_SIZES = """
SELECT c.relname, c.relkind::text AS relkind, pg_relation_size(c.oid) AS bytes,
       COALESCE(pg_total_relation_size(NULLIF(c.reltoastrelid, 0)), 0) AS toast
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'i')
  AND pg_relation_size(c.oid) > 8192
ORDER BY c.relkind DESC, pg_relation_size(c.oid) DESC
"""
_WAL = "SELECT pg_current_wal_lsn()"
_WAL_HEAD = (
    *("triggers", "events", "executions", "rows written", "WAL MiB", "WAL B/event"),
    *("WAL B/execution", "transaction µs/event", "WAL B/heartbeat", "transaction µs/heartbeat"),
)
_SIZE_HEAD = ("relation", "rows", "MiB", "TOAST MiB", "bytes per execution", "bytes per row")
_VARIANTS = {(): "every trigger", _ROLLUPS: "no rollups", (*_ROLLUPS, *_COUNTS): "neither"}


def _records(work: Workload) -> list[list[Record]]:
    offsets = {p: count() for p in range(PARTITIONS)}
    records = [
        Record("sizes", p, next(offsets[p]), key, value, []) for p, key, value in work.records
    ]
    return [records[start : start + BATCH] for start in range(0, len(records), BATCH)]


def _heartbeats(runs: Sequence[asyncpg.Record]) -> list[Record]:
    """One heartbeat for each run, newer than anything it has seen: each moves last_seen_at."""
    ids = [(str(run["id"]), str(run["agent_id"]), str(run["user_id"])) for run in runs]
    return [
        Record(
            "sizes",
            0,
            n,
            execution.encode(),
            orjson.dumps(
                {
                    "specversion": "1.0",
                    "id": str(uuid4()),
                    "source": "urn:worker:sizes",
                    "type": "ExecutionHeartbeat",
                    "subject": execution,
                    "time": "2030-01-01T00:00:00Z",
                    "data": {"execution_id": execution, "agent_id": agent, "user_id": user},
                }
            ),
            [],
        )
        for n, (execution, agent, user) in enumerate(ids)
    ]


async def _apply(engine: AsyncEngine, batches: Sequence[Sequence[Record]]) -> tuple[int, float]:
    """Fold and write each batch as the projector does (names it wrote are not rewritten, the
    commit does not wait for the disk): rows written, and seconds spent in the transactions
    (statements, the batch's rows on their way, the commit; not the decoding and folding)."""
    agents, users = StoredNames(), StoredNames()
    written, seconds = 0, 0.0
    for batch in batches:
        changes = changes_of(batch, 1 << 20)
        new_agents, new_users = agents.unwritten(changes.agents), users.unwritten(changes.users)
        began = time.perf_counter()
        async with write_transaction(engine, asynchronous_commit=True) as tx:
            await write_changes(tx, new_agents, new_users, changes.rows.values())
        seconds += time.perf_counter() - began
        agents.remember(new_agents)
        users.remember(new_users)
        written += len(changes.rows)
    return written, seconds


async def _wal_of(conn: asyncpg.Connection, work: Awaitable[T]) -> tuple[T, float]:
    """What ``work`` returns, and the WAL bytes written meanwhile."""
    before = await conn.fetchval(_WAL)
    result = await work
    return result, await conn.fetchval(
        "SELECT pg_wal_lsn_diff($1, $2)", await conn.fetchval(_WAL), before
    )


async def _write(url: str, work: Workload, disabled: Sequence[str]) -> list[str]:
    """Project the workload into ``url``'s database, then a heartbeat for 10,000 of its runs:
    a row of WAL figures."""
    conn = await asyncpg.connect(asyncpg_dsn(url))
    engine = make_engine(DatabaseSettings(database_url=url))
    try:
        for trigger in disabled:
            await conn.execute(f"ALTER TABLE agent_executions DISABLE TRIGGER {trigger}")
        batches = _records(work)
        (written, seconds), wal = await _wal_of(conn, _apply(engine, batches))
        fed = sum(len(b) for b in batches)
        executions = await conn.fetchval("SELECT count(*) FROM agent_executions")
        runs = await conn.fetch(f"SELECT id, agent_id, user_id FROM agent_executions LIMIT {BATCH}")
        (beats, beat_seconds), beat_wal = await _wal_of(conn, _apply(engine, [_heartbeats(runs)]))
        await asyncio.sleep(1.5)  # the writers' statistics reach the views within a second
        hot = await conn.fetchval(
            "SELECT n_tup_hot_upd FROM pg_stat_user_tables WHERE relname = 'agent_executions'"
        )
        return [
            _VARIANTS[tuple(disabled)],
            f"{fed:,}",
            f"{executions:,}",
            f"{written:,}",
            f"{wal / 2**20:,.1f}",
            f"{wal / fed:,.0f}",
            f"{wal / executions:,.0f}",
            f"{seconds / fed * 1e6:,.1f}",
            f"{beat_wal / beats:,.0f} ({hot:,} HOT)",
            f"{beat_seconds / beats * 1e6:,.1f}",
        ]
    finally:
        await engine.dispose()
        await conn.close()


def _log_bytes(work: Workload) -> list[str]:
    """An event's bytes on the topic (the value; key and headers add ~60), raw and compressed
    in batches of 100 consecutive records of one partition, as a producer batch would be."""
    values = [value for partition, _, value in work.records if partition == 0]
    batches = [b"".join(values[i : i + 100]) for i in range(0, len(values) - 99, 100)]
    raw = sum(map(len, batches))
    return [
        f"{raw / (100 * len(batches)):,.0f}",
        f"{raw / sum(len(zlib.compress(b, 6)) for b in batches):.1f} x",
        f"{raw / sum(len(lzma.compress(b, preset=1)) for b in batches):.1f} x",
    ]


async def _sizes(url: str) -> list[list[str]]:
    """Each relation's bytes, per execution."""
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await conn.execute("ANALYZE")
        executions = await conn.fetchval("SELECT count(*) FROM agent_executions")
        rows = []
        for r in await conn.fetch(_SIZES):
            live = (
                await conn.fetchval(f'SELECT count(*) FROM "{r["relname"]}"')
                if r["relkind"] == "r"
                else None
            )
            rows.append(
                [
                    r["relname"] + (" (index)" if r["relkind"] == "i" else ""),
                    "" if live is None else f"{live:,}",
                    f"{r['bytes'] / 2**20:,.1f}",
                    f"{r['toast'] / 2**20:,.1f}",
                    f"{(r['bytes'] + r['toast']) / executions:,.1f}",
                    "" if not live else f"{(r['bytes'] + r['toast']) / live:,.1f}",
                ]
            )
        return rows
    finally:
        await conn.close()


async def run(args: argparse.Namespace) -> None:
    bench: Bench = from_environment()
    urls = [f"{bench.database_url}_{n}" for n in range(4)]
    try:
        work = generate_events(args.events, PARTITIONS)
        wal, sizes = [], {}
        for url, disabled in zip(urls, _VARIANTS, strict=False):
            await create_database(bench, url)
            wal.append(await _write(url, work, disabled))
            if not disabled:
                sizes["projected"] = await _sizes(url)
            await drop_database(bench, url)
        await create_database(bench, urls[3])
        shape = Shape(executions=args.rows, big=args.rows // 5, agents=args.agents, users=10_000)
        await generate_rows(bench.dsn(urls[3]), shape)
        sizes["copied"] = await _sizes(urls[3])
    finally:
        for url in urls:
            await drop_database(bench, url)
    print(f"## WAL per event (`python -m bench.sizes --events {args.events}`)\n")
    print("\n".join(table(_WAL_HEAD, wal)))
    print("\n## An event on the topic\n")
    print("\n".join(table(("value bytes", "gzip -6", "xz -1"), [_log_bytes(work)])))
    for name, rows in sizes.items():
        print(f"\n## Sizes: {name}\n")
        print("\n".join(table(_SIZE_HEAD, rows)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=200_000, help="for the WAL loads")
    parser.add_argument("--rows", type=int, default=500_000, help="for the packed sizes")
    parser.add_argument("--agents", type=int, default=200, help="of the packed rows")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
