"""An agent's execution statistics: counts by status, success rate and duration percentiles.

Everything comes from ONE statement over agent_executions: a count per status
(``count(*) FILTER (WHERE ...)``), and ``percentile_disc(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP
(ORDER BY execution_time_ms)`` with ``max`` beside it, so the durations are sorted once.
percentile_disc rather than percentile_cont: it returns a duration that some execution really
had (nearest rank, whole milliseconds like the column) instead of interpolating between two,
which with few executions would report a time no run took.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Float, func, select
from sqlalchemy.dialects.postgresql import array
from sqlalchemy.ext.asyncio import AsyncEngine

from agent_history.api.filters import ExecutionFilter, conditions
from agent_history.api.queries import fetch
from agent_history.contract.statuses import STATUSES, TERMINAL_STATUSES
from agent_history.read_model.tables import agent_executions

PERCENTILES = (0.5, 0.95, 0.99)

_e = agent_executions


class _Stats(BaseModel):
    model_config = ConfigDict(frozen=True)


class StatusCounts(_Stats):
    """How many executions have each status; every status is present, zeros included."""

    pending: int
    running: int
    completed: int
    failed: int
    cancelled: int
    timed_out: int


class Durations(_Stats):
    """execution_time_ms over the executions whose duration is known (ended after starting).

    Percentiles are nearest-rank (percentile_disc): each is a duration some execution had.
    All are null when no execution has a known duration.
    """

    count: int = Field(description="Executions with a known execution_time_ms.")
    p50: int | None
    p95: int | None
    p99: int | None
    max: int | None


class ExecutionStats(_Stats):
    """Statistics over an agent's executions that started in [started_after, started_before)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "agent_id": "6f1c2a4e-8d3b-4f5a-9c7e-1b2d3e4f5a6b",
                    "started_after": "2025-01-01T00:00:00Z",
                    "started_before": None,
                    "total": 10,
                    "counts": {
                        "pending": 0,
                        "running": 1,
                        "completed": 6,
                        "failed": 2,
                        "cancelled": 1,
                        "timed_out": 0,
                    },
                    "success_rate": 0.6667,
                    "execution_time_ms": {
                        "count": 9,
                        "p50": 1800,
                        "p95": 9100,
                        "p99": 9100,
                        "max": 9100,
                    },
                }
            ]
        }
    )

    agent_id: UUID
    started_after: datetime | None
    started_before: datetime | None
    total: int = Field(description="Executions counted, of any status.")
    counts: StatusCounts
    success_rate: float | None = Field(
        description="completed / (completed + failed + cancelled + timed_out): a run a "
        "watchdog gave up on counts as not successful; null when none has ended."
    )
    execution_time_ms: Durations


async def execution_stats(engine: AsyncEngine, where: ExecutionFilter) -> ExecutionStats:
    """The statistics of the executions ``where`` selects, which must name an agent."""
    assert where.agent_id is not None
    values = where.bound()
    ms = _e.c.execution_time_ms
    statement = select(
        *(func.count().filter(_e.c.status == status).label(status) for status in STATUSES),
        func.count(ms).label("timed"),
        func.percentile_disc(array(PERCENTILES, type_=Float)).within_group(ms).label("pcts"),
        func.max(ms).label("max"),
    ).where(*conditions(values))
    (row,) = await fetch(engine, statement, values)
    counts: dict[str, Any] = {status: row[status] for status in STATUSES}
    ended = sum(counts[status] for status in TERMINAL_STATUSES)
    p50, p95, p99 = row["pcts"] or (None, None, None)
    return ExecutionStats(
        agent_id=where.agent_id,
        started_after=where.started_after,
        started_before=where.started_before,
        total=sum(counts.values()),
        counts=StatusCounts.model_validate(counts),
        success_rate=counts["completed"] / ended if ended else None,
        execution_time_ms=Durations(count=row["timed"], p50=p50, p95=p95, p99=p99, max=row["max"]),
    )
