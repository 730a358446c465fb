"""Retention: executions that started before a cutoff leave the read model."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from agent_history.projector.announce import announce_everything

# Oldest first, through the execution_start index; rows a projector is writing are left for
# the next round rather than waited for.
_DELETE_OLDEST = text("""
DELETE FROM agent_executions WHERE id IN (
    SELECT id FROM agent_executions WHERE execution_start < :cutoff
    ORDER BY execution_start LIMIT :limit FOR UPDATE SKIP LOCKED)
""")

_UNITS = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds", "w": "weeks"}


def parse_age(value: str) -> timedelta:
    """'90d', '12h', '30m', '2w' or '45s' as a duration."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([dhmsw])\s*", value)
    if not match:
        raise ValueError(f"not a duration: {value!r} (use e.g. 90d, 12h, 30m, 2w)")
    return timedelta(**{_UNITS[match[2]]: float(match[1])})


async def delete_older_than(conn: AsyncConnection, cutoff: datetime, limit: int) -> int:
    """Delete up to ``limit`` executions that started before ``cutoff``; how many went."""
    result = await conn.execute(_DELETE_OLDEST, {"cutoff": cutoff, "limit": limit})
    return int(result.rowcount)


async def prune(engine: AsyncEngine, cutoff: datetime, batch_size: int = 5000) -> int:
    """Delete in short transactions, so no lock is held for long; returns the count."""
    deleted = 0
    while True:
        async with engine.begin() as conn:
            n = await delete_older_than(conn, cutoff, batch_size)
            if n:  # the API's streams and ETags learn of it with the commit
                await announce_everything(conn)
        deleted += n
        if n < batch_size:
            return deleted
