"""The limits the projector is measured against: reading the topic and writing the rows."""

from __future__ import annotations

import time

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition

# Every stored column but the generated execution_time_ms (created_at/updated_at: defaults).
_COLUMNS = [
    "id",
    "agent_id",
    "user_id",
    "status",
    "execution_start",
    "execution_end",
    "input_data",
    "output_data",
    "error_message",
    "input_rank",
    "input_time",
    "input_event_id",
    "terminal_event_id",
]


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


async def copy_rows(dsn: str) -> tuple[int, float]:
    """COPY the projected rows into an empty twin of agent_executions: (rows, seconds).

    The twin has the same columns, check constraint, five indexes and primary key
    (LIKE ... INCLUDING ALL) plus the two foreign keys, and the COPY commits like the
    projector does, so this is what PostgreSQL can write at best, row by final row.
    """
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(f"SELECT {', '.join(_COLUMNS)} FROM agent_executions")
        await conn.execute(
            "DROP TABLE IF EXISTS copy_limit;"
            "CREATE TABLE copy_limit (LIKE agent_executions INCLUDING ALL);"
            "ALTER TABLE copy_limit ADD FOREIGN KEY (agent_id) REFERENCES agents (id),"
            " ADD FOREIGN KEY (user_id) REFERENCES users (id)"
        )
        start = time.perf_counter()
        async with conn.transaction():
            await conn.copy_records_to_table("copy_limit", records=rows, columns=_COLUMNS)
        seconds = time.perf_counter() - start
        await conn.execute("DROP TABLE copy_limit")
        return len(rows), seconds
    finally:
        await conn.close()
