"""The API benchmark's data: rows (bench/api_rows.py) made by worker processes, loaded with COPY.

The rows are streamed as COPY text while agent_executions has no primary key, foreign keys or
indexes: those are read from the catalogue first (as the migrations made them), dropped, and
rebuilt after from the same definitions, so the schema ends exactly as migrated. Triggers stay
on, so whatever they maintain is maintained, but for the rollups' insert trigger: the rollups
are filled in one pass after the COPY (fill_execution_rollups(), as replay does), which is
much faster than adding each chunk. Then VACUUM ANALYZE. A comment on the database
records what it holds, so a kept one is reused.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import multiprocessing
import time
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from uuid import UUID

import asyncpg

from bench.api_rows import COLUMNS, SPAN_DAYS, Shape, copy_text, ids

_MARKER = "agent-history api benchmark"
_CHUNK = 100_000  # rows per generated chunk; one COPY per chunk
_ROLL_UP = "roll_up_inserted_executions"  # migration 0006's insert trigger


@dataclass(frozen=True)
class Dataset:
    shape: Shape
    big_agent: UUID
    first_day: datetime  # execution_start spans [first_day, first_day + 365 days)
    seconds: float  # how long generating and loading took (when it was generated)
    generated_at: str
    phases: dict[str, float] = field(default_factory=dict)  # seconds by step of the load
    reused: bool = False


def _first_day(shape: Shape) -> datetime:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=SPAN_DAYS)


async def read_marker(conn: asyncpg.Connection) -> Dataset | None:
    """What the database holds, from the comment a finished load left on it."""
    comment = await conn.fetchval(
        "SELECT shobj_description(oid, 'pg_database') FROM pg_database "
        "WHERE datname = current_database()"
    )
    if not comment or not comment.startswith(_MARKER):
        return None
    fields = json.loads(comment[len(_MARKER) + 2 :])
    return Dataset(
        shape=Shape(**{"usage": False, **fields["shape"]}),
        big_agent=UUID(fields["big_agent"]),
        first_day=datetime.fromisoformat(fields["first_day"]),
        seconds=fields["seconds"],
        generated_at=fields["generated_at"],
        phases=fields.get("phases", {}),
        reused=True,
    )


async def _schema(conn: asyncpg.Connection) -> list[tuple[str, str, str]]:
    """agent_executions' indexes and key constraints: (kind, name, definition), sorted."""
    rows = await conn.fetch(
        """
        SELECT 'index' AS kind, c.relname AS name, pg_get_indexdef(i.indexrelid) AS definition
        FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
        WHERE i.indrelid = 'agent_executions'::regclass
        UNION ALL
        SELECT CASE contype WHEN 'p' THEN 'primary' ELSE 'foreign' END, conname,
               pg_get_constraintdef(oid)
        FROM pg_constraint WHERE conrelid = 'agent_executions'::regclass AND contype IN ('p', 'f')
        ORDER BY 1, 2
        """
    )
    return [(r["kind"], r["name"], r["definition"]) for r in rows]


async def _rebuild(dsn: str, schema: list[tuple[str, str, str]]) -> None:
    """Indexes on two connections at once (one per core), then the keys that use them."""
    indexes = [d for kind, _, d in schema if kind == "index"]

    async def build(mine: list[str]) -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(
                "SET maintenance_work_mem = '1GB'; SET max_parallel_maintenance_workers = 0"
            )
            for definition in mine:
                await conn.execute(definition)
        finally:
            await conn.close()

    await asyncio.gather(build(indexes[0::2]), build(indexes[1::2]))
    conn = await asyncpg.connect(dsn)
    try:
        for kind, name, definition in schema:
            if kind == "primary":
                await conn.execute(
                    f"ALTER TABLE agent_executions ADD CONSTRAINT {name} "
                    f"PRIMARY KEY USING INDEX {name}"
                )
            elif kind == "foreign":
                await conn.execute(
                    f"ALTER TABLE agent_executions ADD CONSTRAINT {name} {definition}"
                )
    finally:
        await conn.close()


async def generate(dsn: str, shape: Shape) -> Dataset:
    """Fill the freshly migrated database of ``dsn`` with ``shape``'s data."""
    first_day = _first_day(shape)
    agents, users = ids(shape.seed, "agent", shape.agents), ids(shape.seed, "user", shape.users)
    phases: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(phase: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        phases[phase], clock = now - clock, now

    conn = await asyncpg.connect(dsn)
    try:
        if await conn.fetchval("SELECT EXISTS (SELECT FROM agent_executions)"):
            raise RuntimeError("generate() fills a freshly migrated database only")
        for table, keys in (("agents", agents), ("users", users)):
            await conn.copy_records_to_table(
                table,
                records=[(UUID(h), f"{table[:-1]} {n}") for n, h in enumerate(keys)],
                columns=["id", "name"],
            )
        schema = await _schema(conn)
        await _drop(conn, schema)
        await conn.execute(f"ALTER TABLE agent_executions DISABLE TRIGGER {_ROLL_UP}")
        async for chunk in _chunks(shape, int(first_day.timestamp()) * 1_000_000):
            await conn.copy_to_table("agent_executions", source=_one(chunk), columns=COLUMNS)
        lap("generate and COPY")
        await conn.execute("SELECT fill_execution_rollups()")
        await conn.execute(f"ALTER TABLE agent_executions ENABLE TRIGGER {_ROLL_UP}")
        lap("rollups")
        await _rebuild(dsn, schema)
        if await _schema(conn) != schema:
            raise RuntimeError("agent_executions' indexes differ from the migrated ones")
        lap("indexes and keys")
        await conn.execute("VACUUM (ANALYZE) agent_executions")
        await conn.execute("ANALYZE")
        lap("VACUUM ANALYZE")
        dataset = Dataset(
            shape=shape,
            big_agent=UUID(agents[0]),
            first_day=first_day,
            seconds=sum(phases.values()),
            generated_at=datetime.now(UTC).isoformat(timespec="seconds"),
            phases=phases,
        )
        fields = {**asdict(dataset), "big_agent": agents[0], "first_day": first_day.isoformat()}
        del fields["reused"]
        marker = f"{_MARKER}: {json.dumps(fields)}".replace("'", "''")
        await conn.execute(f"COMMENT ON DATABASE {_quoted_db(dsn)} IS '{marker}'")
        return dataset
    finally:
        await conn.close()


async def _drop(conn: asyncpg.Connection, schema: list[tuple[str, str, str]]) -> None:
    """Drop agent_executions' foreign keys, primary key and indexes, in that order."""
    primary = {name for kind, name, _ in schema if kind == "primary"}
    for kind in ("foreign", "primary"):
        for name in (n for k, n, _ in schema if k == kind):
            await conn.execute(f"ALTER TABLE agent_executions DROP CONSTRAINT {name}")
    for name in (n for k, n, _ in schema if k == "index" and n not in primary):
        await conn.execute(f"DROP INDEX {name}")


async def _one(chunk: bytes) -> AsyncIterator[bytes]:
    yield chunk


async def _chunks(shape: Shape, first_us: int) -> AsyncIterator[bytes]:
    """The rows as COPY text, made by two worker processes a few chunks ahead of the COPY."""
    bounds = iter(range(0, shape.executions, _CHUNK))
    loop = asyncio.get_running_loop()
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:

        def submit(start: int) -> asyncio.Future[bytes]:
            stop = min(start + _CHUNK, shape.executions)
            return loop.run_in_executor(pool, copy_text, shape, first_us, start, stop)

        pending = [submit(start) for start in itertools.islice(bounds, 4)]
        while pending:
            chunk = await pending.pop(0)
            pending.extend(submit(start) for start in itertools.islice(bounds, 1))
            yield chunk


def _quoted_db(dsn: str) -> str:
    return '"' + dsn.rsplit("/", 1)[1].split("?")[0].replace('"', '""') + '"'
