"""Erasing a user: their executions, name and status counts leave the read model, and stay out.

The erasure is recorded first (``erased_users``), in a transaction that waits for the batch a
live projector may be writing and holds off the next one (the lock replay's swap takes). Every
batch that commits after it looks the batch's users up in that table inside its own
transaction, after locking its checkpoints, and drops their events (core/changes.py); replay
does the same with the set it reads, and once more at its swap. So no batch can put back what
the deletes that follow take away: they run in short transactions, like prune's, and the
status-count triggers take each deleted row's contribution with it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from agent_history.projector.announce import announce_everything
from agent_history.projector.checkpoints import hold_off_projectors
from agent_history.read_model.prepared import prepare

_RECORD = text("""
INSERT INTO erased_users (user_id) VALUES (:user) ON CONFLICT (user_id) DO NOTHING
RETURNING erased_at
""")

# Through the user-history index; nothing writes these rows once the erasure is recorded.
_DELETE_EXECUTIONS = text("""
DELETE FROM agent_executions WHERE id IN (
    SELECT id FROM agent_executions WHERE user_id = :user LIMIT :limit)
""")

# Only once no execution is left (a concurrent erase of the same user may still be deleting):
# the name, and the status counts the triggers brought down to zero.
_DELETE_COUNTS = text("""
DELETE FROM execution_counts_by_user
WHERE user_id = :user AND NOT EXISTS (SELECT FROM agent_executions WHERE user_id = :user)
""")
_DELETE_NAME = text("""
DELETE FROM users
WHERE id = :user AND NOT EXISTS (SELECT FROM agent_executions WHERE user_id = :user)
""")

_NOTE_REMOVED = text("""
UPDATE erased_users SET executions_removed = executions_removed + :n, updated_at = now()
WHERE user_id = :user
RETURNING erased_at, executions_removed, dropped_events
""")

# A live batch's (asyncpg, prepared).
_ERASED_AMONG = prepare(
    text("SELECT user_id FROM erased_users WHERE user_id = ANY(CAST(:ids AS uuid[]))")
)
_ALL_ERASED = text("SELECT user_id FROM erased_users")

_COUNT_DROPPED = prepare(
    text("""
UPDATE erased_users AS e SET dropped_events = e.dropped_events + d.n, updated_at = now()
FROM unnest(CAST(:ids AS uuid[]), CAST(:ns AS bigint[])) AS d(user_id, n)
WHERE e.user_id = d.user_id
""")
)

# A shadow built while a user was being erased: what the erasure's deletes took from the live
# tables, taken from it too. Its triggers bring the user's status counts down to zero as the
# executions go; the rows of zeros go after them, as erase_user's do.
_REMOVE_EXECUTIONS = text("DELETE FROM agent_executions WHERE user_id = ANY(CAST(:ids AS uuid[]))")
_REMOVE_COUNTS = text(
    "DELETE FROM execution_counts_by_user WHERE user_id = ANY(CAST(:ids AS uuid[]))"
)
_REMOVE_NAMES = text("DELETE FROM users WHERE id = ANY(CAST(:ids AS uuid[]))")


@dataclass(frozen=True, slots=True)
class Erasure:
    """What one erase did: the rows it removed, and where the user's erasure stands."""

    user_id: UUID
    # When the user was first erased; ``first`` is False when this run repeated an erasure.
    erased_at: datetime
    first: bool
    executions: int
    names: int
    status_counts: int
    # Over every erase of this user, and the late events the live projector dropped since.
    executions_removed: int
    dropped_events: int


async def erase_user(engine: AsyncEngine, user_id: UUID, batch_size: int = 5000) -> Erasure:
    """Record the erasure, then delete the user's rows in short transactions; idempotent."""
    async with engine.begin() as conn:
        await hold_off_projectors(conn)
        first = (await conn.execute(_RECORD, {"user": user_id})).first() is not None
    executions = 0
    while True:
        async with engine.begin() as conn:
            result = await conn.execute(_DELETE_EXECUTIONS, {"user": user_id, "limit": batch_size})
            if result.rowcount:  # the API's streams and ETags learn of it with the commit
                await announce_everything(conn)
        executions += int(result.rowcount)
        if result.rowcount < batch_size:
            break
    async with engine.begin() as conn:
        counts = (await conn.execute(_DELETE_COUNTS, {"user": user_id})).rowcount
        names = (await conn.execute(_DELETE_NAME, {"user": user_id})).rowcount
        noted = (await conn.execute(_NOTE_REMOVED, {"user": user_id, "n": executions})).one()
    return Erasure(
        user_id=user_id,
        erased_at=noted.erased_at,
        first=first,
        executions=executions,
        names=int(names),
        status_counts=int(counts),
        executions_removed=noted.executions_removed,
        dropped_events=noted.dropped_events,
    )


async def erased_among(conn: asyncpg.Connection, users: Iterable[UUID]) -> frozenset[UUID]:
    """Which of ``users`` are erased: one primary-key lookup per user, in one statement."""
    ids = list(users)
    if not ids:
        return frozenset()
    return frozenset(row[0] for row in await _ERASED_AMONG.fetch(conn, ids=ids))


async def all_erased(conn: AsyncConnection) -> frozenset[UUID]:
    return frozenset((await conn.scalars(_ALL_ERASED)).all())


async def count_dropped(conn: asyncpg.Connection, dropped: Mapping[UUID, int]) -> None:
    """Add the events of erased users a batch dropped to their erasure records."""
    if not dropped:
        return
    ids = sorted(dropped)  # one lock order for every projector
    await _COUNT_DROPPED.execute(conn, ids=ids, ns=[dropped[i] for i in ids])


async def remove_erased(conn: AsyncConnection, users: frozenset[UUID]) -> int:
    """Delete the executions, status counts and names of ``users`` from the tables on the
    search path."""
    if not users:
        return 0
    ids = sorted(users)
    removed = (await conn.execute(_REMOVE_EXECUTIONS, {"ids": ids})).rowcount
    await conn.execute(_REMOVE_COUNTS, {"ids": ids})
    await conn.execute(_REMOVE_NAMES, {"ids": ids})
    return int(removed)
