"""The read side's service layer: the queries behind the history API. It never writes.

Every request is one statement on a connection in autocommit mode: no BEGIN, no COMMIT, one
round trip, and a statement is its own snapshot. A page that needs its total carries it in the
same statement as a scalar subquery (evaluated once, before the first row), so page and total
agree. The total is a lookup in the status counts that triggers keep per agent and per user
(migration 0003) when the filter is one agent or one user plus statuses; with any other filter
(a time range, tags, metadata, model, parent) it counts the rows (exact, and as costly as the
matching rows are many). Not ``count(*) OVER ()``: the window function makes PostgreSQL
produce every matching row before LIMIT can apply, so a page near the top of a deep history
would cost as much as reading it all; here the page walks the (agent_id, execution_start DESC,
id DESC) index and stops after offset + limit + 1 rows.

A page that continues from a cursor starts with the row-value comparison ``(execution_start,
id) < (:start, :id)`` (``>`` ascending), which the same index answers by seeking, so a page
deep in the history costs what the first one does; such a page carries no total.

Payloads (input_data, output_data) come back as PostgreSQL's own JSON text, never parsed: the
API passes them through to the response as they are (api/render.py).

The list route asks for its page ``written``: each row as its JSON text (api/json_rows.py)
beside its cursor key, through asyncpg itself with the statement compiled once per shape and
prepared once per connection (asyncpg's statement cache), so neither SQLAlchemy's execution and
result rows nor asyncpg's decoding of 22 columns per row run per request.

A pooled connection that died (the server restarted, or an operator ended the session with
pg_terminate_backend) fails its statement; the statement, a read, then runs once more on a
fresh connection, instead of pinging the server before every one. An offset past the end of
the matching rows is the one request with a second statement: its page is empty, so no row
carried the total, and the count runs on its own.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias, TypeVar
from uuid import UUID

import asyncpg
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Executable,
    FromClause,
    RowMapping,
    Select,
    Text,
    any_,
    bindparam,
    cast,
    func,
    literal,
    select,
    tuple_,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from agent_history.api.cursor import Position
from agent_history.api.filters import COUNTED, ExecutionFilter, conditions
from agent_history.api.json_rows import execution_json
from agent_history.read_model.prepared import Prepared, driver, prepare
from agent_history.read_model.tables import (
    agent_executions,
    agents,
    execution_counts_by_agent,
    execution_counts_by_user,
    users,
)

Order: TypeAlias = Literal["desc", "asc"]
Payload: TypeAlias = Literal["input_data", "output_data"]

_e = agent_executions

# The public columns, in the order of the response models' fields (api.render writes them so);
# the fold's bookkeeping (input_rank, input_time, input_event_id, terminal_event_id) and what
# only the watchdog reads (timeout_ms) stay inside the read model. The payloads are chosen per
# request.
FIELDS = (
    "id",
    "agent_id",
    "user_id",
    "status",
    "execution_start",
    "execution_end",
    "execution_time_ms",
    "last_seen_at",
    "error_message",
    "created_at",
    "updated_at",
)
# What the run carries, after FIELDS in execution_columns.
DETAILS = (
    "model",
    "tags",
    "metadata",
    "parent_execution_id",
    "trace_id",
    "input_tokens",
    "output_tokens",
    "cost",
    "cost_currency",
)
# The stored columns execution_columns reads.
COLUMN_NAMES = (*FIELDS, *DETAILS)


def execution_columns(source: FromClause) -> list[ColumnElement[Any]]:
    """The public columns of the executions in ``source`` (agent_executions, or a CTE with its
    columns): FIELDS, then what the run carries, which api.render shapes (tags and metadata
    never null, the usage nested). The metadata comes as PostgreSQL's JSON text, passed through
    like the payloads; the cost as numeric's text, exact and never in exponent form."""
    c = source.c
    return [
        *(c[name] for name in FIELDS),
        c.model,
        c.tags,
        cast(c.metadata, Text).label("metadata"),
        c.parent_execution_id,
        c.trace_id,
        c.input_tokens,
        c.output_tokens,
        cast(c.cost, Text).label("cost"),
        c.cost_currency,
    ]


_COLUMNS = (
    *execution_columns(_e),
    agents.c.name.label("agent_name"),
    users.c.name.label("user_name"),
)
PAYLOADS: tuple[Payload, ...] = ("input_data", "output_data")

_WITH_NAMES = _e.join(agents, agents.c.id == _e.c.agent_id).join(users, users.c.id == _e.c.user_id)


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
    # RowMappings; or asyncpg Records of (body, execution_start, id) for a page ``written``.
    rows: Sequence[Mapping[Any, Any]]
    # How many match in all; None on a page that continues from a cursor.
    total: int | None
    # Whether more matching rows follow the last one.
    more: bool


T = TypeVar("T")

# What a connection that died while pooled raises on its next statement.
_DEAD = (
    OSError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,  # pg_terminate_backend, a server shutdown
    # The server's farewell to a terminated session can arrive as the next statement starts:
    # asyncpg then finds its protocol busy ("cannot switch to state 12").
    asyncpg.exceptions.InternalClientError,
)


async def _on_a_live_connection(
    engine: AsyncEngine, read: Callable[[AsyncConnection], Awaitable[T]]
) -> T:
    """``read`` on a pooled connection; on a fresh connection once more if the pooled one had
    died (its statement failed with the connection, which is then dropped from the pool)."""
    for attempt in (1, 2):
        async with engine.connect() as conn:
            try:
                return await read(conn)
            except Exception as error:
                if attempt == 2 or not await _dropped_if_dead(conn, error):
                    raise
    raise AssertionError("unreachable")


async def _dropped_if_dead(conn: AsyncConnection, error: Exception) -> bool:
    """Whether ``error`` came of ``conn`` having died; if so, ``conn`` is invalidated."""
    if isinstance(error, DBAPIError):  # through SQLAlchemy, which invalidated it already
        return error.connection_invalidated
    raw = (await conn.get_raw_connection()).driver_connection
    if isinstance(error, _DEAD) or (raw is not None and raw.is_closed()):
        await conn.invalidate()
        return True
    return False  # the statement's own error (PostgreSQL refused it, say)


async def fetch(
    engine: AsyncEngine, statement: Executable, values: Mapping[str, Any] | None = None
) -> Sequence[RowMapping]:
    """The rows of one statement; on a fresh connection once more if the pooled one had died."""

    async def read(conn: AsyncConnection) -> Sequence[RowMapping]:
        return (await conn.execute(statement, values)).mappings().all()

    return await _on_a_live_connection(engine, read)


def _select_stored(include: Collection[str], *where: ColumnElement[bool]) -> Select[Any]:
    """The stored columns that a written row needs, as they are (api.json_rows writes them)."""
    names = (*COLUMN_NAMES, *(name for name in PAYLOADS if name in include))
    return select(*(_e.c[name] for name in names)).where(*where)


async def fetch_prepared(
    engine: AsyncEngine, statement: Prepared, values: Mapping[str, Any]
) -> Sequence[asyncpg.Record]:
    """The records of a prepared statement, straight from asyncpg on a pooled connection; on a
    fresh connection once more if the pooled one had died (as ``fetch``)."""

    async def read(conn: AsyncConnection) -> Sequence[asyncpg.Record]:
        return await statement.fetch(await driver(conn), **values)

    return await _on_a_live_connection(engine, read)


def _select_executions(include: Collection[str], *where: ColumnElement[bool]) -> Select[Any]:
    payloads = [_e.c[name].cast(Text).label(name) for name in PAYLOADS if name in include]
    return select(*_COLUMNS, *payloads).select_from(_WITH_NAMES).where(*where)


async def list_executions(
    engine: AsyncEngine, where: ExecutionFilter, page: PageRequest, *, written: bool = False
) -> Page:
    """A page of matching executions ordered by (execution_start, id), both in ``page.order``.

    Each row has the public columns of agent_executions (the payloads only as included, as
    JSON text) plus ``agent_name`` and ``user_name``; ``written``, it has instead ``body``, the
    execution's JSON text as a list shows it, beside ``execution_start`` and ``id``. A page
    that does not continue from a cursor also has ``total``.
    """
    bound = where.bound()
    count = _count_shape(bound) if page.after is None else None
    shape = (tuple(bound), page.order, frozenset(page.include), page.after is not None, count)
    # One more row than the page, to know whether another page follows.
    values = {**bound, "limit": page.limit + 1, "offset": page.offset}
    if page.after is not None:
        values.update(after_start=page.after.execution_start, after_id=page.after.id)
    fetched: Sequence[Mapping[Any, Any]]
    if written:
        fetched = await fetch_prepared(engine, _written_page_statement(*shape), values)
    else:
        fetched = await fetch(engine, _page_statement(*shape), values)
    rows, more = fetched[: page.limit], len(fetched) > page.limit
    if count is None:
        return Page(rows, None, more)
    if rows:
        return Page(rows, rows[0]["total"], more)
    # Nothing on this page, so no row carried the total: none match, or the offset is past
    # the end of those that do.
    if page.offset == 0:
        return Page(rows, 0, more)
    (total,) = await fetch(engine, _count_statement(count), values)
    return Page(rows, total["total"], more)


# How a total is counted: from the counts kept per agent or per user (with statuses or not),
# or from the rows with the filter's own conditions.
_CountShape: TypeAlias = tuple[str, tuple[str, ...]]


def _count_shape(bound: Collection[str]) -> _CountShape:
    """How to count the rows of a filter whose ``bound()`` has these names."""
    statuses = ("statuses",) if "statuses" in bound else ()
    people = [name for name in ("user_id", "owner_id") if name in bound]
    if COUNTED.issuperset(bound):
        if "agent_id" in bound and not people:
            return ("agent_id", statuses)
        if "agent_id" not in bound and len(people) == 1:
            return (people[0], statuses)
    return ("rows", tuple(bound))


@functools.cache
def _count_statement(shape: _CountShape) -> Select[Any]:
    kind, names = shape
    if kind == "rows":
        return select(func.count().label("total")).select_from(_e).where(*conditions(names))
    kept = execution_counts_by_agent if kind == "agent_id" else execution_counts_by_user
    key = kept.c.agent_id if kind == "agent_id" else kept.c.user_id
    total = func.coalesce(func.sum(kept.c.n), 0).cast(BigInteger)  # sum(bigint) is numeric
    statement = select(total.label("total")).where(key == bindparam(kind))
    if names:
        statement = statement.where(kept.c.status == any_(bindparam("statuses", type_=ARRAY(Text))))
    return statement


@functools.cache
def _written_page_statement(
    names: tuple[str, ...],
    order: Order,
    include: frozenset[str],
    after: bool,
    count: _CountShape | None,
) -> Prepared:
    """``_page_statement``'s page with each row as its JSON text and its cursor key, for
    asyncpg. The JSON is written around the page, after its LIMIT: in the scan, PostgreSQL
    would write it for every row an offset skips too (4 s instead of 1.3 s at 500,000)."""
    page = _page_statement(names, order, include, after, count, stored=True).subquery(_e.name)
    body = execution_json([name for name in PAYLOADS if name in include]).label("body")
    key = (page.c.execution_start, page.c.id)
    total = [page.c.total] if count is not None else []
    statement = select(body, *key, *total).order_by(
        *(c.desc() if order == "desc" else c.asc() for c in key)
    )
    return prepare(statement)


@functools.cache
def _page_statement(
    names: tuple[str, ...],
    order: Order,
    include: frozenset[str],
    after: bool,
    count: _CountShape | None,
    stored: bool = False,
) -> Select[Any]:
    """The statement of a page of a filter whose ``bound()`` has these names; ``stored``, with
    the stored columns only (``_select_stored``), for ``_written_page_statement``."""
    where = conditions(names)
    key = (_e.c.execution_start, _e.c.id)
    if after:
        row = tuple_(*key)
        mark = tuple_(
            bindparam("after_start", type_=_e.c.execution_start.type),
            bindparam("after_id", type_=_e.c.id.type),
        )
        where.append(row < mark if order == "desc" else row > mark)
    select_rows = _select_stored if stored else _select_executions
    selected = select_rows(include, *where)
    statement = (
        selected.order_by(*(c.desc() if order == "desc" else c.asc() for c in key))
        .limit(bindparam("limit"))
        .offset(bindparam("offset"))
    )
    if count is not None:
        total = _count_statement(count).correlate(None).scalar_subquery()
        statement = statement.add_columns(total.label("total"))
    return statement


async def get_execution(
    engine: AsyncEngine, execution_id: UUID, owner_id: UUID | None = None
) -> RowMapping | None:
    """One execution with its payloads (JSON text) and names, or None if there is none (or,
    with ``owner_id``, none of that user's)."""
    values = ExecutionFilter(owner_id=owner_id).bound()
    statement = _detail_statement(tuple(values))
    rows = await fetch(engine, statement, {**values, "execution_id": execution_id})
    return rows[0] if rows else None


@functools.cache
def _detail_statement(names: tuple[str, ...]) -> Select[Any]:
    return _select_executions(PAYLOADS, _e.c.id == bindparam("execution_id"), *conditions(names))


async def check_database(engine: AsyncEngine) -> None:
    """Raise unless the database answers ``SELECT 1``."""
    await fetch(engine, select(literal(1)))


async def changed_executions(
    engine: AsyncEngine, where: ExecutionFilter, include: Collection[str], ids: Collection[UUID]
) -> Sequence[RowMapping]:
    """Those of these executions that match the filter, as a list shows them: what a live
    stream sends after the projector announced that they changed."""
    bound = where.bound()
    statement = _changed_statement(tuple(bound), frozenset(include))
    return await fetch(engine, statement, {**bound, "ids": list(ids)})


@functools.cache
def _changed_statement(names: tuple[str, ...], include: frozenset[str]) -> Select[Any]:
    ids = _e.c.id == any_(bindparam("ids", type_=ARRAY(_e.c.id.type)))
    return _select_executions(include, ids, *conditions(names)).order_by(
        _e.c.execution_start, _e.c.id
    )
