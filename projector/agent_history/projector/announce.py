"""Announcing changes to the API's live streams: one NOTIFY in the transaction that made them.

The announcement travels with the transaction: PostgreSQL delivers it only if the transaction
commits, after the commit, in commit order (read_model/changes.py holds its format).
"""

from __future__ import annotations

from collections.abc import Iterable

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from agent_history.projector.core.fold import Execution
from agent_history.read_model.changes import CHANNEL, EVERYTHING, encode_changes
from agent_history.read_model.prepared import prepare

# One NOTIFY per body, in order, each with its position: the transaction id and the part.
_NOTIFY = text("""
SELECT pg_notify(:channel, CAST(pg_current_xact_id() AS text) || '.' || n || ' ' || body)
FROM unnest(CAST(:bodies AS text[])) WITH ORDINALITY AS b(body, n)
""")
_NOTIFY_PREPARED = prepare(_NOTIFY)  # a live batch's (asyncpg)


async def announce_rows(conn: asyncpg.Connection, rows: Iterable[Execution]) -> None:
    """Announce that these executions changed (the stored row may have been left as it was:
    a listener rereads it, and sends it again at worst)."""
    bodies = encode_changes((r.id, r.agent_id, r.user_id) for r in rows)
    if bodies:
        await _NOTIFY_PREPARED.execute(conn, channel=CHANNEL, bodies=bodies)


async def announce_everything(conn: AsyncConnection) -> None:
    """Announce that anything may have changed (rows deleted, the tables swapped)."""
    await conn.execute(_NOTIFY, {"channel": CHANNEL, "bodies": [EVERYTHING]})
