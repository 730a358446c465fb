"""The read side's service layer: the queries behind the history API. It never writes.

``list_executions`` runs two statements, the page and the count, rather than one with
``count(*) OVER ()``. The window function makes PostgreSQL produce and join every matching
row of the agent before LIMIT can apply, so a page near the top of a deep history costs as much
as reading it all. Split, the page walks the (agent_id, execution_start DESC, id DESC) index
and stops after offset + limit rows, and the count reads only agent_executions (no joins, no
sort). The window also cannot report a total for an offset past the end, where no row carries
it. Both statements run in one REPEATABLE READ READ ONLY transaction, so the total and the
page come from the same snapshot, and the count is skipped when the page itself shows where
the matching rows end.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement, RowMapping, Select, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from agent_history.tables import agent_executions, agents, users

_e = agent_executions

# The public columns; the fold's bookkeeping (input_rank, input_time, input_event_id,
# terminal_event_id) stays inside the read model.
_COLUMNS = (
    _e.c.id,
    _e.c.agent_id,
    _e.c.user_id,
    _e.c.status,
    _e.c.execution_start,
    _e.c.execution_end,
    _e.c.execution_time_ms,
    _e.c.input_data,
    _e.c.output_data,
    _e.c.error_message,
    _e.c.created_at,
    _e.c.updated_at,
    agents.c.name.label("agent_name"),
    users.c.name.label("user_name"),
)

_WITH_NAMES = _e.join(agents, agents.c.id == _e.c.agent_id).join(users, users.c.id == _e.c.user_id)


@asynccontextmanager
async def _snapshot(bind: AsyncEngine | AsyncConnection) -> AsyncIterator[AsyncConnection]:
    """A connection in a read-only transaction; a given connection is used as it is."""
    if isinstance(bind, AsyncConnection):
        yield bind
        return
    async with bind.connect() as conn:
        # One statement: BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY.
        reader = await conn.execution_options(
            isolation_level="REPEATABLE READ", postgresql_readonly=True
        )
        async with reader.begin():
            yield reader


def _select_executions(*where: ColumnElement[bool]) -> Select[Any]:
    return select(*_COLUMNS).select_from(_WITH_NAMES).where(*where)


def _matching(agent_id: UUID, statuses: Collection[str]) -> list[ColumnElement[bool]]:
    where = [_e.c.agent_id == agent_id]
    if statuses:
        where.append(_e.c.status.in_(sorted(statuses)))
    return where


async def list_executions(
    bind: AsyncEngine | AsyncConnection,
    agent_id: UUID,
    statuses: Collection[str],
    limit: int,
    offset: int,
) -> tuple[Sequence[RowMapping], int]:
    """A page of the agent's executions, newest first, and how many match in all.

    An empty ``statuses`` means any status. Each row has the public columns of
    agent_executions plus ``agent_name`` and ``user_name``.
    """
    where = _matching(agent_id, statuses)
    page = (
        _select_executions(*where)
        .order_by(_e.c.execution_start.desc(), _e.c.id.desc())
        .limit(limit)
        .offset(offset)
    )
    async with _snapshot(bind) as conn:
        rows = (await conn.execute(page)).mappings().all()
        if len(rows) < limit and (rows or offset == 0):
            # A short page that is not past the end holds the last matching rows.
            return rows, offset + len(rows)
        count = select(func.count()).select_from(_e).where(*where)
        total = (await conn.execute(count)).scalar_one()
    return rows, total


async def get_execution(
    bind: AsyncEngine | AsyncConnection, execution_id: UUID
) -> RowMapping | None:
    """One execution with its agent's and user's names, or None if there is none."""
    async with _snapshot(bind) as conn:
        result = await conn.execute(_select_executions(_e.c.id == execution_id))
        row: RowMapping | None = result.mappings().one_or_none()
    return row


async def check_database(bind: AsyncEngine) -> None:
    """Raise unless the database answers ``SELECT 1``."""
    async with bind.connect() as conn:
        await conn.execute(select(1))
