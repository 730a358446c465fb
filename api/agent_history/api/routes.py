"""The execution history under /api/v1/agent-studio: lists, one execution, its tree, stats.

Every route needs a bearer token (api.deps.CurrentCaller). A caller without the all-executions
scope sees only their own executions: lists and stats are narrowed to them, and anything else is
a 404, exactly as if it did not exist.
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from sqlalchemy.ext.asyncio import AsyncEngine

from agent_history.api import queries, render, trees
from agent_history.api.agents import AgentPage, list_agents
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
from agent_history.api.filters import ExecutionFilter
from agent_history.api.paging import list_filter, list_page
from agent_history.api.parameters import (
    AgentListQuery,
    AgentsQuery,
    ExecutionQuery,
    ListQuery,
    StatsQuery,
    TreeQuery,
    UserListQuery,
)
from agent_history.api.problems import not_found
from agent_history.api.render import JSONBody
from agent_history.api.schemas import (
    EXAMPLE_AGENT_ID,
    EXAMPLE_EXECUTION_ID,
    EXAMPLE_USER_ID,
    Execution,
    ExecutionPage,
    ExecutionTree,
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


# The lists' metadata.KEY parameters have names no OpenAPI parameter can give; they are
# described here, in each list's description.
_METADATA_FILTERS = """

**Metadata**: `metadata.KEY=VALUE` (for instance `metadata.team=finance`) keeps the executions
whose metadata has KEY with the string VALUE, or with a number or boolean whose JSON text is
VALUE (`metadata.priority=2` finds 2 and "2"; a number compares as a number, so 2.0 also finds
2). Repeat it, with other keys or the same one: every pair must match. An empty key, one of
more than 200 characters, or more than 64 pairs is a 422.

Filters combine: each one given narrows the list further."""


@history.get(
    "/agents/{agent_id}/executions",
    summary="List an agent's executions",
    description="Newest first by default. Without the all-executions scope, only the caller's "
    "own." + _METADATA_FILTERS,
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
    """An agent's executions (the description is the operation's)."""
    where = list_filter(params, agent_id=agent_id, user_id=params.user_id, owner_id=caller.owner)
    return await _conditional_page(request, engine, cursors, feed, where, params)


@history.get(
    "/users/{user_id}/executions",
    summary="List a user's executions",
    description="The same parameters as an agent's list. Another user's list is a 404 "
    "without the all-executions scope." + _METADATA_FILTERS,
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
    """A user's executions (the description is the operation's)."""
    if not caller.may_read(user_id):
        raise not_found(f"user {user_id} not found")
    where = list_filter(params, agent_id=params.agent_id, user_id=user_id, owner_id=caller.owner)
    return await _conditional_page(request, engine, cursors, feed, where, params)


# The list routes, which api.fast_lists serves in front of FastAPI.
LISTS = (list_agent_executions, list_user_executions)


async def _conditional_page(
    request: Request,
    engine: AsyncEngine,
    cursors: CursorCodec,
    feed: ChangeFeed,
    where: ExecutionFilter,
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
    "/executions/{execution_id}/tree",
    summary="Get a run with the runs it started, and theirs",
    response_description="The run, then its descendants in depth-first order.",
    response_model=ExecutionTree,
    responses={404: {**_PROBLEM, "description": "No execution with this id that you may read."}},
)
async def get_execution_tree(
    engine: EngineDep,
    caller: CurrentCaller,
    execution_id: Annotated[
        UUID, Path(description="The tree's root run.", examples=[EXAMPLE_EXECUTION_ID])
    ],
    params: Annotated[TreeQuery, Query()],
) -> JSONBody:
    """The run and its descendants (children by `parent_execution_id`, recursively), each in
    the list shape with its `depth`, down to `depth` levels and at most `limit` runs in all;
    `truncated` says whether and why runs are missing. The run must be one you may read (a 404
    otherwise, as for one execution); below it, without the all-executions scope, the tree
    has only your own runs: another user's run is left out, with everything below it."""
    tree = await trees.execution_tree(
        engine, execution_id, depth=params.depth, limit=params.limit, owner_id=caller.owner
    )
    if tree is None:
        raise not_found(f"execution {execution_id} not found")
    return render.tree(tree.rows, depth=params.depth, limit=params.limit, truncated=tree.truncated)


@history.get(
    "/agents/{agent_id}/executions/stats",
    summary="An agent's execution statistics",
    response_description="Counts by status, success rate, execution_time_ms percentiles, "
    "tokens and cost; per group and per time bucket when asked.",
    response_model_exclude_none=False,
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
    all-executions scope, over the caller's own. Counts, sums and success rates are exact;
    `percentiles` says whether the durations are (from rows) or are within 1 % (from the
    rollups' sketch)."""
    where = ExecutionFilter(
        agent_id=agent_id,
        owner_id=caller.owner,
        started_after=params.started_after,
        started_before=params.started_before,
    )
    return await execution_stats(engine, where, params.group_by, params.interval)


@history.get(
    "/agents",
    summary="The agents you may see, with run count, success rate, p95 and last run",
    response_description="One page of agents by id, and how many there are.",
)
async def get_agents(
    engine: EngineDep, caller: CurrentCaller, params: Annotated[AgentsQuery, Query()]
) -> AgentPage:
    """With the all-executions scope every agent with runs (from the kept counts and rollups,
    p95 within 1 %); without it, the agents you have runs of, over your own runs (p95 exact)."""
    return await list_agents(engine, caller.owner, params.limit, params.offset)
