"""The API's routes: the execution history under /api/v1/agent-studio, and health probes."""

from __future__ import annotations

import asyncio
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from api import queries
from api.schemas import (
    ErrorBody,
    Execution,
    ExecutionPage,
    ExecutionStatus,
    Health,
    ValidationErrorBody,
)

# How long /readyz waits for the database before calling it unreachable.
READY_TIMEOUT_S = 2.0
# PostgreSQL's OFFSET is a bigint; a larger value is a client error, not a server one.
MAX_OFFSET = 2**63 - 1

history = APIRouter(
    prefix="/api/v1/agent-studio",
    tags=["history"],
    responses={
        422: {"model": ValidationErrorBody, "description": "Invalid parameters."},
        503: {"model": ErrorBody, "description": "The database is unreachable."},
    },
)
health = APIRouter(tags=["health"])


def _engine(request: Request) -> AsyncEngine:
    """The engine that create_app's lifespan built for this app."""
    engine: AsyncEngine = request.app.state.engine
    return engine


Engine = Annotated[AsyncEngine, Depends(_engine)]


@history.get(
    "/agents/{agent_id}/executions",
    summary="List an agent's executions, newest first",
    response_description="One page of executions and the total that match.",
)
async def list_agent_executions(
    engine: Engine,
    agent_id: Annotated[UUID, Path(description="The agent whose executions to list.")],
    limit: Annotated[int, Query(ge=1, le=100, description="Page size.")] = 50,
    offset: Annotated[
        int, Query(ge=0, le=MAX_OFFSET, description="Matching executions to skip.")
    ] = 0,
    status: Annotated[
        list[ExecutionStatus] | None,
        Query(description="Only executions with one of these statuses; repeat to give several."),
    ] = None,
    status_filter: Annotated[
        list[ExecutionStatus] | None,
        Query(description="Synonym of `status`; both may be given and are combined."),
    ] = None,
) -> ExecutionPage:
    """Executions ordered by `execution_start` descending, then by id descending."""
    statuses = {*(status or ()), *(status_filter or ())}
    rows, total = await queries.list_executions(engine, agent_id, statuses, limit, offset)
    return ExecutionPage(
        executions=[Execution.from_row(row) for row in rows],
        total=total,
        limit=limit,
        offset=offset,
    )


@history.get(
    "/executions/{execution_id}",
    summary="Get one execution",
    responses={404: {"model": ErrorBody, "description": "No execution has this id."}},
)
async def get_execution(
    engine: Engine,
    execution_id: Annotated[UUID, Path(description="The execution to return.")],
) -> Execution:
    row = await queries.get_execution(engine, execution_id)
    if row is None:
        raise HTTPException(status_code=404, detail=f"execution {execution_id} not found")
    return Execution.from_row(row)


@health.get("/healthz", summary="Liveness: the process answers; the database is not checked")
async def healthz() -> Health:
    return Health(status="ok")


@health.get(
    "/readyz",
    summary="Readiness: the database answers SELECT 1",
    responses={503: {"model": Health, "description": "The database is unreachable."}},
)
async def readyz(engine: Engine, response: Response) -> Health:
    try:
        async with asyncio.timeout(READY_TIMEOUT_S):
            await queries.check_database(engine)
    except (SQLAlchemyError, OSError, TimeoutError) as error:
        # The error's class only: its text can name hosts and users to an unauthenticated probe.
        response.status_code = 503
        return Health(status="unavailable", detail=f"database unreachable: {type(error).__name__}")
    return Health(status="ok")
