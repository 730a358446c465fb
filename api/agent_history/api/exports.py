"""Exports: ``<list>/export?format=jsonl|csv``, every execution of a list, streamed.

An export is the list walked by its own cursor statement (api.queries.list_executions after a
position), ``BATCH`` rows a statement, each batch written out before the next is read: memory
stays what one batch takes, however long the history, and no pooled connection is held while a
slow client reads (a server-side cursor would hold one, and its transaction, for the whole
download). Like a walk by cursor, it never repeats or skips a run that stays put; a run whose
``execution_start`` moves during the export can be seen twice or missed.

The same code serves ``agent-history export`` (server/cli.py).
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Collection
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

import orjson
from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import StreamingResponse
from sqlalchemy.ext.asyncio import AsyncEngine

from agent_history.api import queries, render
from agent_history.api.cursor import Position
from agent_history.api.deps import CurrentCaller, EngineDep, get_current_caller
from agent_history.api.filters import ExecutionFilter
from agent_history.api.paging import list_filter
from agent_history.api.parameters import (
    AgentExportQuery,
    ExportFormat,
    UserExportQuery,
)
from agent_history.api.problems import not_found
from agent_history.api.schemas import EXAMPLE_AGENT_ID, EXAMPLE_USER_ID, ExecutionSummary, Problem

BATCH = 1000
MEDIA_TYPES = {"jsonl": "application/jsonl", "csv": "text/csv; charset=utf-8"}
# Before the first row of each order: the cursor position every row follows.
_START = {
    "desc": Position(datetime.max.replace(tzinfo=UTC), UUID(int=2**128 - 1)),
    "asc": Position(datetime.min.replace(tzinfo=UTC), UUID(int=0)),
}
_PROBLEM: dict[str, Any] = {"model": Problem}

exports = APIRouter(
    prefix="/api/v1/agent-studio",
    tags=["export"],
    dependencies=[Depends(get_current_caller)],
    responses={
        200: {
            "description": "A file: JSON Lines, or CSV with a header row.",
            "content": {t: {"schema": {"type": "string"}} for t in MEDIA_TYPES.values()},
        },
        401: {**_PROBLEM, "description": "No bearer token, or one that is not valid."},
        422: {**_PROBLEM, "description": "Invalid parameters, each named with the reason."},
    },
)


@exports.get(
    "/agents/{agent_id}/executions/export",
    summary="Download every execution of an agent's list",
    response_class=StreamingResponse,
)
async def export_agent_executions(
    engine: EngineDep,
    caller: CurrentCaller,
    agent_id: Annotated[UUID, Path(examples=[EXAMPLE_AGENT_ID])],
    params: Annotated[AgentExportQuery, Query()],
) -> StreamingResponse:
    """The list's filters, order and `include`; all of its executions, not a page."""
    where = list_filter(params, agent_id=agent_id, user_id=params.user_id, owner_id=caller.owner)
    return _download(engine, where, params, f"executions-agent-{agent_id}")


@exports.get(
    "/users/{user_id}/executions/export",
    summary="Download every execution of a user's list",
    response_class=StreamingResponse,
    responses={
        404: {**_PROBLEM, "description": "Another user's, without the all-executions scope."}
    },
)
async def export_user_executions(
    engine: EngineDep,
    caller: CurrentCaller,
    user_id: Annotated[UUID, Path(examples=[EXAMPLE_USER_ID])],
    params: Annotated[UserExportQuery, Query()],
) -> StreamingResponse:
    """As an agent's export, for the user's list."""
    if not caller.may_read(user_id):
        raise not_found(f"user {user_id} not found")
    where = list_filter(params, agent_id=params.agent_id, user_id=user_id, owner_id=caller.owner)
    return _download(engine, where, params, f"executions-user-{user_id}")


def _download(
    engine: AsyncEngine,
    where: ExecutionFilter,
    params: AgentExportQuery | UserExportQuery,
    name: str,
) -> StreamingResponse:
    chunks = export_chunks(engine, where, params.format, params.order, params.included)
    return StreamingResponse(
        chunks,
        media_type=MEDIA_TYPES[params.format],
        headers={"Content-Disposition": f'attachment; filename="{name}.{params.format}"'},
    )


async def export_chunks(
    engine: AsyncEngine,
    where: ExecutionFilter,
    form: ExportFormat,
    order: queries.Order,
    include: Collection[queries.Payload],
    batch: int = BATCH,
) -> AsyncIterator[bytes]:
    """The export of a list with this filter, a batch of rows at a time."""
    payloads = [name for name in queries.PAYLOADS if name in include]
    columns = [
        name
        for name in ExecutionSummary.model_fields
        if name not in queries.PAYLOADS or name in payloads
    ]
    if form == "csv":
        yield _csv([columns])
    after = _START[order]
    while True:
        request = queries.PageRequest(
            limit=batch, order=order, after=after, include=frozenset(include)
        )
        page = await queries.list_executions(engine, where, request)
        if page.rows:
            if form == "csv":
                items = [render.execution(row, payloads) for row in page.rows]
                yield _csv([_cell(item.get(name)) for name in columns] for item in items)
            else:
                yield b"".join(render.item(row, payloads) + b"\n" for row in page.rows)
        if not page.more:
            return
        last = page.rows[-1]
        after = Position(last["execution_start"], last["id"])


def _csv(rows: Any) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    return out.getvalue().encode()


def _cell(value: object) -> str:
    """A list field as CSV text: strings as they are, anything else as its JSON text."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, UUID):
        return str(value)
    text = orjson.dumps(value, default=str, option=orjson.OPT_UTC_Z).decode()
    if isinstance(value, datetime):
        return text[1:-1]
    return text
