"""The agents overview: each agent a caller may see, with its run count, success rate, p95
duration and last run time.

With the all-executions scope every agent with runs, from the status counts and the month
duration sketches the triggers keep (p95 within 1 %), and the agent's newest run through the
agent history index: a page costs its agents' buckets, not their runs. Without it, the agents
the caller has runs of, over the caller's own runs only, from those rows (p95 exact).
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from agent_history.api.queries import fetch
from agent_history.api.stats import APPROXIMATE, EXACT
from agent_history.contract.statuses import TERMINAL_STATUSES
from agent_history.read_model.tables import bucket_value

_ENDED = ", ".join(f"'{status}'" for status in TERMINAL_STATUSES)

_ALL = text(f"""
WITH page AS (
    SELECT agent_id, sum(n) AS total,
        COALESCE(sum(n) FILTER (WHERE status = 'completed'), 0) AS completed,
        COALESCE(sum(n) FILTER (WHERE status IN ({_ENDED})), 0) AS ended,
        count(*) OVER () AS agents
    FROM execution_counts_by_agent GROUP BY agent_id HAVING sum(n) > 0
    ORDER BY agent_id LIMIT :limit OFFSET :offset)
SELECT p.agent_id, a.name, p.total, p.completed, p.ended, p.agents, k.p95, last.at AS last_run_at
FROM page p
LEFT JOIN agents a ON a.id = p.agent_id
LEFT JOIN LATERAL (
    SELECT min(bucket) FILTER (WHERE c >= GREATEST(ceil(0.95 * t), 1)) AS p95
    FROM (SELECT bucket, sum(n) OVER (ORDER BY bucket) AS c, sum(n) OVER () AS t
          FROM (SELECT k.lo + u.o - 1 AS bucket, sum(u.n) AS n
                FROM execution_duration_sketches_all_models k,
                    unnest(k.counts) WITH ORDINALITY AS u(n, o)
                WHERE k.agent_id = p.agent_id AND k.period = 'month'
                GROUP BY 1 HAVING sum(u.n) > 0) m) s) k ON true
LEFT JOIN LATERAL (
    SELECT execution_start AS at FROM agent_executions e WHERE e.agent_id = p.agent_id
    ORDER BY execution_start DESC LIMIT 1) last ON true
ORDER BY p.agent_id
""")

_OWN = text(f"""
WITH page AS (
    SELECT agent_id, count(*) AS total, count(*) FILTER (WHERE status = 'completed') AS completed,
        count(*) FILTER (WHERE status IN ({_ENDED})) AS ended, count(*) OVER () AS agents,
        percentile_disc(0.95) WITHIN GROUP (ORDER BY execution_time_ms) AS p95,
        max(execution_start) AS last_run_at
    FROM agent_executions WHERE user_id = :owner_id GROUP BY agent_id
    ORDER BY agent_id LIMIT :limit OFFSET :offset)
SELECT p.*, a.name FROM page p LEFT JOIN agents a ON a.id = p.agent_id ORDER BY p.agent_id
""")


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class AgentOverview(_Model):
    id: UUID
    name: str | None
    total: int = Field(description="Runs (the caller's own without the all-executions scope).")
    success_rate: float | None = Field(description="As in the stats; null when none ended.")
    p95_ms: int | float | None = Field(description="p95 of execution_time_ms.")
    last_run_at: datetime | None = Field(description="The newest run's execution_start.")


class AgentPage(_Model):
    agents: list[AgentOverview]
    total: int | None = Field(description="Agents in all pages; null past the last page.")
    limit: int
    offset: int
    percentiles: str = Field(description=f"'{EXACT}' or '{APPROXIMATE}'.")


async def list_agents(
    engine: AsyncEngine, owner_id: UUID | None, limit: int, offset: int
) -> AgentPage:
    """A page of the agents a caller sees, by id; ``owner_id`` None: every agent."""
    values: dict[str, object] = {"limit": limit, "offset": offset}
    if owner_id is not None:
        values["owner_id"] = owner_id
    rows = await fetch(engine, _ALL if owner_id is None else _OWN, values)
    agents = [
        AgentOverview(
            id=row["agent_id"],
            name=row["name"],
            total=int(row["total"]),
            success_rate=int(row["completed"]) / int(row["ended"]) if row["ended"] else None,
            p95_ms=row["p95"]
            if owner_id is not None or row["p95"] is None
            else bucket_value(row["p95"]),
            last_run_at=row["last_run_at"],
        )
        for row in rows
    ]
    return AgentPage(
        agents=agents,
        total=int(rows[0]["agents"]) if rows else (0 if offset == 0 else None),
        limit=limit,
        offset=offset,
        percentiles=EXACT if owner_id is not None else APPROXIMATE,
    )
