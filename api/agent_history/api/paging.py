"""One page of a list: the filter it covers, its cursor check, and the cursor to the next."""

from __future__ import annotations

from uuid import UUID

from sqlalchemy.ext.asyncio import AsyncEngine

from agent_history.api import queries, render
from agent_history.api.cursor import CursorCodec, InvalidCursor, Position, fingerprint
from agent_history.api.parameters import ListQuery


def list_filter(params: ListQuery, **ids: UUID | None) -> queries.ExecutionFilter:
    return queries.ExecutionFilter(
        **ids,
        statuses=params.statuses,
        started_after=params.started_after,
        started_before=params.started_before,
    )


def _fingerprint(where: queries.ExecutionFilter, params: ListQuery) -> bytes:
    """What a cursor must match to continue: the filters and the order, not the page size."""
    return fingerprint(
        {
            "agent_id": where.agent_id,
            "user_id": where.user_id,
            "owner_id": where.owner_id,
            "statuses": sorted(where.statuses),
            "started_after": where.started_after,
            "started_before": where.started_before,
            "order": params.order,
        }
    )


async def list_page(
    engine: AsyncEngine,
    cursors: CursorCodec,
    where: queries.ExecutionFilter,
    params: ListQuery,
) -> render.JSONBody:
    """The page ``params`` asks for; InvalidCursor for a cursor that cannot continue it."""
    query = _fingerprint(where, params)
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
    page = await queries.list_executions(engine, where, request)
    next_cursor = None
    if page.more:
        last = page.rows[-1]
        next_cursor = cursors.encode(Position(last["execution_start"], last["id"]), query)
    return render.page(
        page.rows,
        total=page.total,
        limit=params.limit,
        offset=params.offset,
        next_cursor=next_cursor,
    )
