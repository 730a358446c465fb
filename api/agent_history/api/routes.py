"""The execution history under /api/v1/agent-studio: lists, one execution, an agent's stats.

Every route needs a bearer token (api.deps.CurrentCaller). A caller without the all-executions
scope sees only their own executions: lists and stats are narrowed to them, and anything else is
a 404, exactly as if it did not exist.
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from sqlalchemy.ext.asyncio import AsyncEngine

from agent_history.api import queries, render
from agent_history.api.changes import ChangeFeed
from agent_history.api.conditional import list_etag, matches, not_modified, tagged
from agent_history.api.cursor import CursorCodec
from agent_history.api.deps import (
    CurrentCaller,
    CursorsDep,
    EngineDep,
    FeedDep,
    get_current_caller,
)
from agent_history.api.paging import list_filter, list_page
from agent_history.api.parameters import (
    AgentListQuery,
    ExecutionQuery,
    ListQuery,
    StatsQuery,
    UserListQuery,
)
from agent_history.api.problems import not_found
from agent_history.api.schemas import (
    EXAMPLE_AGENT_ID,
    EXAMPLE_EXECUTION_ID,
    EXAMPLE_USER_ID,
    Execution,
    ExecutionPage,
    Problem,
)
from agent_history.api.stats import ExecutionStats, execution_stats

_PROBLEM: dict[str, Any] = {"model": Problem}

history = APIRouter(
    prefix="/api/v1/agent-studio",
    tags=["history"],
    # Authentication first: a caller without a valid token learns nothing else.
    dependencies=[Depends(get_current_caller)],
    responses={
        401: {**_PROBLEM, "description": "No bearer token, or one that is not valid."},
        422: {**_PROBLEM, "description": "Invalid parameters, each named with the reason."},
        503: {**_PROBLEM, "description": "The database is unreachable."},
    },
)
_BAD_CURSOR: dict[int | str, dict[str, Any]] = {
    400: {
        **_PROBLEM,
        "description": "A cursor that is not genuine or not this query's, or a cursor with a "
        "nonzero offset.",
    }
}


@history.get(
    "/agents/{agent_id}/executions",
    summary="List an agent's executions",
    response_description="One page of executions, the total that match and the next cursor.",
    response_model=ExecutionPage,
    responses=_BAD_CURSOR,
)
async def list_agent_executions(
    request: Request,
    engine: EngineDep,
    feed: FeedDep,
    cursors: CursorsDep,
    caller: CurrentCaller,
    agent_id: Annotated[
        UUID, Path(description="The agent whose executions to list.", examples=[EXAMPLE_AGENT_ID])
    ],
    params: Annotated[AgentListQuery, Query()],
) -> Response:
    """Newest first by default. Without the all-executions scope, only the caller's own."""
    where = list_filter(params, agent_id=agent_id, user_id=params.user_id, owner_id=caller.owner)
    return await _conditional_page(request, engine, cursors, feed, where, params)


@history.get(
    "/users/{user_id}/executions",
    summary="List a user's executions",
    response_description="One page of executions, the total that match and the next cursor.",
    response_model=ExecutionPage,
    responses={
        **_BAD_CURSOR,
        404: {**_PROBLEM, "description": "Another user's, without the all-executions scope."},
    },
)
async def list_user_executions(
    request: Request,
    engine: EngineDep,
    feed: FeedDep,
    cursors: CursorsDep,
    caller: CurrentCaller,
    user_id: Annotated[
        UUID, Path(description="The user whose executions to list.", examples=[EXAMPLE_USER_ID])
    ],
    params: Annotated[UserListQuery, Query()],
) -> Response:
    """The same parameters as an agent's list. Another user's list is a 404 without the
    all-executions scope."""
    if not caller.may_read(user_id):
        raise not_found(f"user {user_id} not found")
    where = list_filter(params, agent_id=params.agent_id, user_id=user_id, owner_id=caller.owner)
    return await _conditional_page(request, engine, cursors, feed, where, params)


async def _conditional_page(
    request: Request,
    engine: AsyncEngine,
    cursors: CursorCodec,
    feed: ChangeFeed,
    where: queries.ExecutionFilter,
    params: ListQuery,
) -> Response:
    """The page, with its ETag; a 304 without any query when the client has it (api.conditional)."""
    etag = list_etag(request, feed, where)
    if etag is not None and matches(request, etag):
        return not_modified(etag)
    return tagged(request, await list_page(engine, cursors, where, params), etag)


@history.get(
    "/executions/{execution_id}",
    summary="Get one execution, with its input and output",
    response_model=Execution,
    responses={404: {**_PROBLEM, "description": "No execution with this id that you may read."}},
)
async def get_execution(
    request: Request,
    engine: EngineDep,
    caller: CurrentCaller,
    execution_id: Annotated[
        UUID, Path(description="The execution to return.", examples=[EXAMPLE_EXECUTION_ID])
    ],
    # No parameters: the model is there to refuse any that are given.
    _: Annotated[ExecutionQuery, Query()],
) -> Response:
    row = await queries.get_execution(engine, execution_id, caller.owner)
    if row is None:
        raise not_found(f"execution {execution_id} not found")
    return tagged(request, render.dumps(render.execution(row)))


@history.get(
    "/agents/{agent_id}/executions/stats",
    summary="An agent's execution statistics",
    response_description="Counts by status, success rate and execution_time_ms percentiles.",
)
async def get_agent_stats(
    engine: EngineDep,
    caller: CurrentCaller,
    agent_id: Annotated[
        UUID,
        Path(description="The agent whose executions to summarise.", examples=[EXAMPLE_AGENT_ID]),
    ],
    params: Annotated[StatsQuery, Query()],
) -> ExecutionStats:
    """Over the executions that started in [started_after, started_before); without the
    all-executions scope, over the caller's own."""
    where = queries.ExecutionFilter(
        agent_id=agent_id,
        owner_id=caller.owner,
        started_after=params.started_after,
        started_before=params.started_before,
    )
    return await execution_stats(engine, where)
