"""The limits the projector is measured against: reading the topic and writing the rows."""

from __future__ import annotations

import time

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition

from agent_history.read_model.tables import (
    ROLLUPS,
    agent_executions,
    execution_counts_by_agent,
    execution_counts_by_user,
)
from bench.live import servers_cpu_seconds, used_since

# Every stored column but the generated execution_time_ms (created_at/updated_at: defaults).
_COLUMNS = [
    c.name
    for c in agent_executions.columns
    if c.computed is None and c.name not in ("created_at", "updated_at")
]
# The tables that agent_executions' triggers keep (status counts, rollups), twinned with it.
_KEPT = (execution_counts_by_agent, execution_counts_by_user, *ROLLUPS)
_TWIN = "copy_limit"


async def read_topic(
    bootstrap: str, topic: str, ends: dict[int, int], **fetch: int
) -> tuple[int, float]:
    """Consume every record from the beginning, doing nothing with them: (records, seconds)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **fetch)
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, p) for p in ends])
        await consumer.seek_to_beginning()
        wanted, seen = sum(ends.values()), 0
        start = time.perf_counter()
        while seen < wanted:
            batches = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            seen += sum(len(records) for records in batches.values())
        return seen, time.perf_counter() - start
    finally:
        await consumer.stop()


async def copy_rows(dsn: str, *, triggers: bool) -> tuple[int, float, dict[str, float]]:
    """COPY the projected rows into an empty twin of agent_executions: (rows, seconds, CPU
    seconds of this process and of the servers meanwhile).

    The twin (in a schema of its own) has the same columns, check constraint, indexes and
    primary key (LIKE ... INCLUDING ALL) plus the two foreign keys, and the COPY commits like
    the projector does, so this is what PostgreSQL can write at best, row by final row. With
    ``triggers`` it also has the live table's statement-level triggers, which fill twins of
    the status counts and rollups as they fill the real ones: the read model as designed.
    """
    conn = await asyncpg.connect(dsn)
    try:
        live = await conn.fetchval("SELECT current_schema()")
        rows = await conn.fetch(f"SELECT {', '.join(_COLUMNS)} FROM agent_executions")
        await conn.execute(f"DROP SCHEMA IF EXISTS {_TWIN} CASCADE; CREATE SCHEMA {_TWIN}")
        for table in (agent_executions, *_KEPT):
            await conn.execute(
                f"CREATE TABLE {_TWIN}.{table.name} (LIKE {live}.{table.name} INCLUDING ALL)"
            )
        await conn.execute(
            f"ALTER TABLE {_TWIN}.agent_executions"
            f" ADD FOREIGN KEY (agent_id) REFERENCES {live}.agents (id),"
            f" ADD FOREIGN KEY (user_id) REFERENCES {live}.users (id)"
        )
        if triggers:  # as replay gives them to its shadow table (projector/replay.py)
            definitions = await conn.fetch(
                "SELECT pg_get_triggerdef(oid) FROM pg_trigger "
                "WHERE tgrelid = $1::regclass AND NOT tgisinternal",
                f"{live}.agent_executions",
            )
            on_live, on_twin = f" ON {live}.agent_executions ", f" ON {_TWIN}.agent_executions "
            for (definition,) in definitions:
                await conn.execute(definition.replace(on_live, on_twin))
        # The trigger functions name their tables unqualified: the twins come first.
        await conn.execute(f"SET search_path TO {_TWIN}, {live}")
        servers, own = servers_cpu_seconds(), time.process_time()
        start = time.perf_counter()
        async with conn.transaction():
            await conn.copy_records_to_table(
                "agent_executions", schema_name=_TWIN, records=rows, columns=_COLUMNS
            )
        seconds = time.perf_counter() - start
        cpu = {"client": time.process_time() - own, **used_since(servers)}
        await conn.execute(f"RESET search_path; DROP SCHEMA {_TWIN} CASCADE")
        return len(rows), seconds, cpu
    finally:
        await conn.close()
