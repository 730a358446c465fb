"""What partitioning agent_executions would do to a first page, and to the upsert by id.

An input of docs/scaling.md. In a database of the run's own: the same 500,000 runs (a year of
them, one agent with a fifth, the rest over 199 agents) in five tables, each with the history
index ``(agent_id, execution_start DESC, id DESC)``: unpartitioned; 13 monthly and 367 daily
range partitions of ``execution_start`` (the primary key must then be ``(id,
execution_start)``); 13 monthly range partitions of the id itself, the ids being UUIDv7 (their
first 48 bits the run's time in ms); and 32 hash partitions of the id, the shape of a table
distributed by id over 32 shards. For each, the first page of 50 newest runs of the big agent and
of a small one: the plan's top node, how many partitions it opened, buffers, planning and
execution time, then the median of 200 executions of the prepared statement. Then the three
upserts that break on a table partitioned by ``execution_start``, with PostgreSQL's answers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time

import asyncpg

from bench.environment import create_database, drop_database, from_environment
from bench.report import table

_COLUMNS = "id uuid, agent_id uuid NOT NULL, execution_start timestamptz NOT NULL, filler text"
_SETUP = f"""
CREATE TABLE src AS
SELECT (lpad(to_hex((extract(epoch FROM t) * 1000)::bigint), 12, '0') || '7'
        || substr(md5(g::text), 1, 3) || '8' || substr(md5(g::text), 4, 15))::uuid AS id,
       ('00000000-0000-4000-8000-' || lpad(CASE WHEN g % 5 = 0 THEN 0 ELSE g % 199 + 1 END::text,
                                            12, '0'))::uuid AS agent_id,
       t AS execution_start, md5(g::text) AS filler
FROM generate_series(1, {{runs}}) g,
     LATERAL (SELECT timestamptz '2025-12-01' + g / {{runs}}.0 * interval '365 days' AS t) s;
CREATE TABLE plain ({_COLUMNS}, PRIMARY KEY (id));
CREATE TABLE by_month ({_COLUMNS}, PRIMARY KEY (id, execution_start))
    PARTITION BY RANGE (execution_start);
CREATE TABLE by_day ({_COLUMNS}, PRIMARY KEY (id, execution_start))
    PARTITION BY RANGE (execution_start);
CREATE TABLE by_id_time ({_COLUMNS}, PRIMARY KEY (id)) PARTITION BY RANGE (id);
CREATE TABLE by_id_hash ({_COLUMNS}, PRIMARY KEY (id)) PARTITION BY HASH (id);
CREATE FUNCTION v7_floor(t timestamptz) RETURNS uuid LANGUAGE sql AS $$
    SELECT (substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-0000-0000-000000000000')::uuid
    FROM (SELECT lpad(to_hex((extract(epoch FROM t) * 1000)::bigint), 12, '0') AS h) x $$;
DO $$
DECLARE m timestamptz; d timestamptz;
BEGIN
  FOR i IN 0..12 LOOP
    m := timestamptz '2025-12-01' + i * interval '1 month';
    EXECUTE format('CREATE TABLE by_month_%s PARTITION OF by_month FOR VALUES FROM (%L) TO (%L)',
                   i, m, m + interval '1 month');
    EXECUTE format('CREATE TABLE by_id_time_%s PARTITION OF by_id_time '
                   'FOR VALUES FROM (%L) TO (%L)',
                   i, v7_floor(m), v7_floor(m + interval '1 month'));
  END LOOP;
  FOR i IN 0..366 LOOP
    d := timestamptz '2025-12-01' + i * interval '1 day';
    EXECUTE format('CREATE TABLE by_day_%s PARTITION OF by_day FOR VALUES FROM (%L) TO (%L)',
                   i, d, d + interval '1 day');
  END LOOP;
  FOR i IN 0..31 LOOP
    EXECUTE format('CREATE TABLE by_id_hash_%s PARTITION OF by_id_hash '
                   'FOR VALUES WITH (MODULUS 32, REMAINDER %s)', i, i);
  END LOOP;
END $$;
"""
_TABLES = {
    "plain": "none",
    "by_month": "13 months of execution_start",
    "by_day": "367 days of execution_start",
    "by_id_time": "13 months of the id's time (UUIDv7)",
    "by_id_hash": "32 hashes of the id (as 32 shards)",
}
_AGENTS = {
    "big (a fifth of the runs)": "00000000-0000-4000-8000-000000000000",
    "small (1 of 200)": "00000000-0000-4000-8000-000000000007",
}
_PAGE = (
    "SELECT id, execution_start, filler FROM {} WHERE agent_id = $1 "
    "ORDER BY execution_start DESC, id DESC LIMIT 50"
)
# The queued run's row, then its Started event a minute later, in the next month.
_RUN = "('00000000-0000-7000-8000-00000000000{}', '00000000-0000-4000-8000-000000000001', {}, 'x')"
_QUEUED, _STARTED = "'2026-03-31 23:59:30+00'", "'2026-04-01 00:00:30+00'"
_UPSERTS: dict[str, str | tuple[str, ...]] = {
    "ON CONFLICT (id)": f"INSERT INTO by_month VALUES {_RUN.format(1, _QUEUED)} "
    "ON CONFLICT (id) DO NOTHING",
    "ON CONFLICT (id, execution_start), Started moves the start": (
        f"INSERT INTO by_month VALUES {_RUN.format(2, _QUEUED)}",
        f"INSERT INTO by_month VALUES {_RUN.format(2, _STARTED)} "
        "ON CONFLICT (id, execution_start) DO UPDATE SET filler = 'started'",
        "SELECT count(*) || ' rows with that id' FROM by_month "
        "WHERE id = '00000000-0000-7000-8000-000000000002'",
    ),
    "ON CONFLICT DO UPDATE moving the start to the next month": (
        f"INSERT INTO by_month VALUES {_RUN.format(3, _QUEUED)}",
        f"INSERT INTO by_month VALUES {_RUN.format(3, _QUEUED)} "
        f"ON CONFLICT (id, execution_start) DO UPDATE SET execution_start = {_STARTED}",
    ),
    "a late event before the oldest partition": "INSERT INTO by_month VALUES "
    + _RUN.format(4, "'2024-01-01 00:00:00+00'"),
}


async def _load(conn: asyncpg.Connection, runs: int) -> None:
    await conn.execute(_SETUP.format(runs=runs))
    for name in _TABLES:
        await conn.execute(f"INSERT INTO {name} SELECT * FROM src ORDER BY execution_start")
        await conn.execute(f"CREATE INDEX ON {name} (agent_id, execution_start DESC, id DESC)")
    await conn.execute(f"VACUUM ANALYZE {', '.join(_TABLES)}")


async def _page(conn: asyncpg.Connection, name: str, agent: str) -> list[str]:
    sql = _PAGE.format(name)
    statement = await conn.prepare(sql)
    for _ in range(10):
        await statement.fetch(agent)
    times = []
    for _ in range(200):
        began = time.perf_counter()
        await statement.fetch(agent)
        times.append(time.perf_counter() - began)
    explained = await conn.fetchval(
        f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql.replace('$1', repr(agent))}"
    )
    plan = json.loads(explained)[0]
    top = plan["Plan"]["Plans"][0]  # under the Limit
    opened = sum(1 for p in top.get("Plans", []) if p.get("Actual Loops", 0) > 0) or 1
    buffers = plan["Plan"]["Shared Hit Blocks"] + plan["Plan"]["Shared Read Blocks"]
    return [
        top["Node Type"],
        str(opened),
        str(buffers),
        f"{plan['Planning Time']:.3f}",
        f"{plan['Execution Time']:.3f}",
        f"{statistics.median(times) * 1000:.3f}",
    ]


async def _upsert(conn: asyncpg.Connection, statements: str | tuple[str, ...]) -> str:
    """What PostgreSQL answers to the statements, run in a transaction rolled back after."""
    answer = ""
    transaction = conn.transaction()
    await transaction.start()
    try:
        for statement in (statements,) if isinstance(statements, str) else statements:
            answer = str(await conn.fetchval(statement) or "ok")
    except asyncpg.PostgresError as error:
        detail = getattr(error, "detail", None)
        answer = f"{type(error).__name__}: {getattr(error, 'message', error)}"
        answer += f" ({detail})" if detail else ""
    finally:
        await transaction.rollback()
    return answer


async def run(args: argparse.Namespace) -> None:
    bench = from_environment()
    url = bench.database_url
    await create_database(bench, url)
    try:
        conn = await asyncpg.connect(bench.dsn(url))
        try:
            began = time.perf_counter()
            await _load(conn, args.runs)
            loaded = time.perf_counter() - began
            pages = [
                [what, agent, *await _page(conn, name, key)]
                for name, what in _TABLES.items()
                for agent, key in _AGENTS.items()
            ]
            upserts = [[case, await _upsert(conn, sql)] for case, sql in _UPSERTS.items()]
        finally:
            await conn.close()
    finally:
        await drop_database(bench, url)
    command = f"`python -m bench.partitions --runs {args.runs}`, {loaded:.0f} s to load"
    print(f"## First page of 50 by partitioning ({command})\n")
    head = ("partitions", "agent", "top node", "partitions opened", "buffers", "plan ms")
    print("\n".join(table((*head, "execution ms", "p50 ms, prepared"), pages)))
    print("\n## Upserts on a table partitioned by execution_start\n")
    print("\n".join(table(("upsert", "PostgreSQL's answer"), upserts)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=500_000)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
