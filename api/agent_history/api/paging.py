"""One page of a list: the filter it covers, its cursor check, and the cursor to the next."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncEngine

from agent_history.api import queries, render
from agent_history.api.cursor import CursorCodec, InvalidCursor, Position, fingerprint
from agent_history.api.filters import ExecutionFilter
from agent_history.api.parameters import ListFilters, ListQuery


def list_filter(params: ListFilters, **ids: UUID | None) -> ExecutionFilter:
    return ExecutionFilter(
        **ids,
        statuses=params.statuses,
        started_after=params.started_after,
        started_before=params.started_before,
        tags=frozenset(params.tag or ()),
        metadata=params.metadata_filters,
        model=params.model,
        parent_execution_id=params.parent_execution_id,
        root=params.root,
    )


def query_fingerprint(where: ExecutionFilter, order: str) -> bytes:
    """What a cursor must match to continue: the filters and the order, not the page size.

    The filters added after the first cursors were issued count only when given, so a query
    without them has the fingerprint it always had, and its cursors stay valid across the
    upgrade.
    """
    query: dict[str, Any] = {
        "agent_id": where.agent_id,
        "user_id": where.user_id,
        "owner_id": where.owner_id,
        "statuses": sorted(where.statuses),
        "started_after": where.started_after,
        "started_before": where.started_before,
        "order": order,
    }
    added: dict[str, Any] = {
        "tags": sorted(where.tags),
        "metadata": sorted(where.metadata),
        "model": where.model,
        "parent_execution_id": where.parent_execution_id,
        "root": where.root,
    }
    query.update({name: value for name, value in added.items() if value not in (None, [])})
    return fingerprint(query)


async def list_page(
    engine: AsyncEngine,
    cursors: CursorCodec,
    where: ExecutionFilter,
    params: ListQuery,
) -> render.JSONBody:
    """The page ``params`` asks for; InvalidCursor for a cursor that cannot continue it."""
    query = query_fingerprint(where, params.order)
    after = None
    if params.cursor is not None:
        if params.offset:
            raise InvalidCursor("offset must be 0 or absent when a cursor is given")
        after = cursors.decode(params.cursor, query)
    request = queries.PageRequest(
        limit=params.limit,
        offset=params.offset,
        order=params.order,
        after=after,
        include=params.included,
    )
    page = await queries.list_executions(engine, where, request, written=True)
    next_cursor = None
    if page.more:
        last = page.rows[-1]
        next_cursor = cursors.encode(Position(last["execution_start"], last["id"]), query)
    return render.page(
        [row["body"] for row in page.rows],
        total=page.total,
        limit=params.limit,
        offset=params.offset,
        next_cursor=next_cursor,
    )
