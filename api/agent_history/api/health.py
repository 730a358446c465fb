"""Health probes, open to anyone: liveness (/healthz) and readiness (/readyz)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from sqlalchemy.exc import SQLAlchemyError

from agent_history.api import queries
from agent_history.api.deps import EngineDep
from agent_history.api.problems import DATABASE_UNAVAILABLE, ProblemError
from agent_history.api.schemas import Health, Problem

# How long /readyz waits for the database before calling it unreachable.
READY_TIMEOUT_S = 2.0

health = APIRouter(tags=["health"])


@health.get("/healthz", summary="Liveness: the process answers; the database is not checked")
async def healthz() -> Health:
    return Health(status="ok")


@health.get(
    "/readyz",
    summary="Readiness: the database answers SELECT 1",
    responses={503: {"model": Problem, "description": "The database is unreachable."}},
)
async def readyz(engine: EngineDep) -> Health:
    try:
        async with asyncio.timeout(READY_TIMEOUT_S):
            await queries.check_database(engine)
    except (SQLAlchemyError, OSError, TimeoutError) as error:
        # The error's class only: its text can name hosts and users to an unauthenticated probe.
        raise ProblemError(
            503,
            f"database unreachable: {type(error).__name__}",
            kind=DATABASE_UNAVAILABLE,
            title="Database unavailable",
        ) from None
    return Health(status="ok")
