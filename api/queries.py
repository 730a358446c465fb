"""The read side's service layer: the queries behind the history API. It never writes.

``list_executions`` runs two statements, the page and the count, rather than one with
``count(*) OVER ()``. The window function makes PostgreSQL produce and join every matching
row of the agent before LIMIT can apply, so a page near the top of a deep history costs as much
as reading it all. Split, the page walks the (agent_id, execution_start DESC, id DESC) index
and stops after offset + limit + 1 rows. The count is a lookup in the status counts that
triggers keep per agent and per user (migration 0003) when the filter is one agent or one
user plus statuses; with a time range it counts the rows (exact, and as costly as the range
is wide). Both statements run in one REPEATABLE READ READ ONLY transaction, so the total and
the page come from the same snapshot, and the count is skipped when the page itself shows
where the matching rows end. A page that continues from a cursor starts with the row-value
comparison ``(execution_start, id) < (:start, :id)`` (``>`` ascending), which the same index
answers by seeking, so a page deep in the history costs what the first one does; such a page
carries no count.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, TypeAlias
from uuid import UUID

from sqlalchemy import (
    Column,
    ColumnElement,
    RowMapping,
    Select,
    func,
    literal,
    select,
    tuple_,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from agent_history.tables import (
    agent_executions,
    agents,
    execution_counts_by_agent,
    execution_counts_by_user,
    users,
)
from api.cursor import Position

Order: TypeAlias = Literal["desc", "asc"]
Payload: TypeAlias = Literal["input_data", "output_data"]

_e = agent_executions

# The public columns; the fold's bookkeeping (input_rank, input_time, input_event_id,
# terminal_event_id) stays inside the read model. The payloads are chosen per request.
_COLUMNS = (
    _e.c.id,
    _e.c.agent_id,
    _e.c.user_id,
    _e.c.status,
    _e.c.execution_start,
    _e.c.execution_end,
    _e.c.execution_time_ms,
    _e.c.error_message,
    _e.c.created_at,
    _e.c.updated_at,
    agents.c.name.label("agent_name"),
    users.c.name.label("user_name"),
)
PAYLOADS: tuple[Payload, ...] = ("input_data", "output_data")

_WITH_NAMES = _e.join(agents, agents.c.id == _e.c.agent_id).join(users, users.c.id == _e.c.user_id)


@dataclass(frozen=True)
class ExecutionFilter:
    """Which executions a request covers; each field given narrows it further."""

    agent_id: UUID | None = None
    user_id: UUID | None = None
    # The caller's own user id, unless the caller may read every user's executions.
    owner_id: UUID | None = None
    statuses: frozenset[str] = frozenset()
    started_after: datetime | None = None  # inclusive
    started_before: datetime | None = None  # exclusive

    def conditions(self) -> list[ColumnElement[bool]]:
        where = []
        if self.agent_id is not None:
            where.append(_e.c.agent_id == self.agent_id)
        if self.user_id is not None:
            where.append(_e.c.user_id == self.user_id)
        if self.owner_id is not None and self.owner_id != self.user_id:
            where.append(_e.c.user_id == self.owner_id)
        if self.statuses:
            where.append(_e.c.status.in_(sorted(self.statuses)))
        if self.started_after is not None:
            where.append(_e.c.execution_start >= self.started_after)
        if self.started_before is not None:
            where.append(_e.c.execution_start < self.started_before)
        return where


@dataclass(frozen=True)
class PageRequest:
    limit: int = 50
    offset: int = 0
    order: Order = "desc"
    # Continue after this row (keyset pagination) instead of from the first one.
    after: Position | None = None
    include: frozenset[Payload] = field(default_factory=frozenset)


@dataclass(frozen=True)
class Page:
    rows: Sequence[RowMapping]
    # How many match in all; None on a page that continues from a cursor.
    total: int | None
    # Whether more matching rows follow the last one.
    more: bool


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


def _select_executions(include: Collection[str], *where: ColumnElement[bool]) -> Select[Any]:
    payloads = [_e.c[name] for name in PAYLOADS if name in include]
    return select(*_COLUMNS, *payloads).select_from(_WITH_NAMES).where(*where)


def _keyset(page: PageRequest) -> list[ColumnElement[bool]]:
    if page.after is None:
        return []
    row = tuple_(_e.c.execution_start, _e.c.id)
    mark = tuple_(
        literal(page.after.execution_start, _e.c.execution_start.type),
        literal(page.after.id, _e.c.id.type),
    )
    return [row < mark if page.order == "desc" else row > mark]


async def list_executions(
    bind: AsyncEngine | AsyncConnection, where: ExecutionFilter, page: PageRequest
) -> Page:
    """A page of matching executions ordered by (execution_start, id), both in ``page.order``.

    Each row has the public columns of agent_executions (the payloads only as included) plus
    ``agent_name`` and ``user_name``.
    """
    conditions = where.conditions()
    key = (_e.c.execution_start, _e.c.id)
    order_by = [c.desc() for c in key] if page.order == "desc" else [c.asc() for c in key]
    statement = (
        _select_executions(page.include, *conditions, *_keyset(page))
        .order_by(*order_by)
        .limit(page.limit + 1)  # one more, to know whether another page follows
        .offset(page.offset)
    )
    async with _snapshot(bind) as conn:
        fetched = (await conn.execute(statement)).mappings().all()
        rows, more = fetched[: page.limit], len(fetched) > page.limit
        if page.after is not None:
            return Page(rows, None, more)
        if not more and (rows or page.offset == 0):
            # A last page that is not past the end says how many match.
            return Page(rows, page.offset + len(rows), more)
        total = await _count(conn, where)
    return Page(rows, total, more)


async def _count(conn: AsyncConnection, where: ExecutionFilter) -> int:
    """How many executions match: from the status counts the triggers keep when the filter
    is one agent or one user (plus statuses), else counted from the rows."""
    people = {u for u in (where.user_id, where.owner_id) if u is not None}
    timeless = where.started_after is None and where.started_before is None
    if timeless and where.agent_id is not None and not people:
        statement = _kept(execution_counts_by_agent.c.agent_id, where.agent_id, where.statuses)
    elif timeless and where.agent_id is None and len(people) == 1:
        statement = _kept(execution_counts_by_user.c.user_id, people.pop(), where.statuses)
    else:
        statement = select(func.count()).select_from(_e).where(*where.conditions())
    return int((await conn.execute(statement)).scalar_one())


def _kept(key: Column[UUID], value: UUID, statuses: frozenset[str]) -> Select[Any]:
    counts = key.table.c
    statement = select(func.coalesce(func.sum(counts.n), 0)).where(key == value)
    return statement.where(counts.status.in_(sorted(statuses))) if statuses else statement


async def get_execution(
    bind: AsyncEngine | AsyncConnection, execution_id: UUID, owner_id: UUID | None = None
) -> RowMapping | None:
    """One execution with its payloads and names, or None if there is none (or, with
    ``owner_id``, none of that user's)."""
    where = ExecutionFilter(owner_id=owner_id).conditions()
    statement = _select_executions(PAYLOADS, _e.c.id == execution_id, *where)
    async with _snapshot(bind) as conn:
        row: RowMapping | None = (await conn.execute(statement)).mappings().one_or_none()
    return row


async def check_database(bind: AsyncEngine) -> None:
    """Raise unless the database answers ``SELECT 1``."""
    async with bind.connect() as conn:
        await conn.execute(select(1))
