"""Where each projection stands: every statement on projector_checkpoints.

A checkpoint is the next offset to apply in one partition, for one consumer group and topic.
It is written in the same transaction as the rows it covers, so it is never ahead of them nor
behind them; Kafka's committed offsets are only a hint.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from agent_history.read_model.prepared import prepare

_READ = text("""
SELECT partition, next_offset FROM projector_checkpoints
WHERE consumer_group = :group AND topic = :topic
""")

_LOCK = prepare(
    text("""
SELECT partition, next_offset FROM projector_checkpoints
WHERE consumer_group = :group AND topic = :topic AND partition = ANY(CAST(:partitions AS int[]))
ORDER BY partition
FOR UPDATE
""")
)

_SAVE = prepare(
    text("""
INSERT INTO projector_checkpoints AS c (consumer_group, topic, partition, next_offset,
                                        dead_lettered)
SELECT :group, :topic, p, o, d
FROM unnest(CAST(:partitions AS int[]), CAST(:offsets AS bigint[]), CAST(:dead AS bigint[]))
     AS u(p, o, d)
ON CONFLICT (consumer_group, topic, partition) DO UPDATE
SET next_offset = GREATEST(c.next_offset, EXCLUDED.next_offset),
    dead_lettered = c.dead_lettered + EXCLUDED.dead_lettered,
    updated_at = now()
""")
)

# Waits for the batch any projector is writing (it holds row locks) and holds off the next
# ones (they lock rows first) until the transaction ends; readers are not blocked.
_HOLD_OFF_PROJECTORS = text("LOCK TABLE projector_checkpoints IN EXCLUSIVE MODE")


async def read_checkpoints(conn: AsyncConnection, group: str, topic: str) -> dict[int, int]:
    """The stored next offset of each partition (a partition never applied has none)."""
    result = await conn.execute(_READ, {"group": group, "topic": topic})
    return {row.partition: row.next_offset for row in result}


async def lock_checkpoints(
    conn: asyncpg.Connection, group: str, topic: str, partitions: Iterable[int]
) -> dict[int, int]:
    """The stored next offset of each partition, locked until the transaction ends."""
    rows = await _LOCK.fetch(conn, group=group, topic=topic, partitions=sorted(partitions))
    return {row["partition"]: row["next_offset"] for row in rows}


async def save_checkpoints(
    conn: asyncpg.Connection,
    group: str,
    topic: str,
    next_offsets: Mapping[int, int],
    dead_lettered: Mapping[int, int],
) -> None:
    """Move each partition's checkpoint forward (never back) and count its dead letters."""
    parts = sorted(next_offsets)
    if not parts:
        return
    await _SAVE.execute(
        conn,
        group=group,
        topic=topic,
        partitions=parts,
        offsets=[next_offsets[p] for p in parts],
        dead=[dead_lettered.get(p, 0) for p in parts],
    )


async def hold_off_projectors(conn: AsyncConnection) -> None:
    """Until this transaction ends, no projector commits a batch (of any group or topic)."""
    await conn.execute(_HOLD_OFF_PROJECTORS)
