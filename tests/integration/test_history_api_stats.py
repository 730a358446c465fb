"""An agent's stats, checked against the same numbers computed by hand in Python."""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from agent_history.api.settings import ApiSettings
from agent_history.contract.statuses import STATUSES
from tests.integration.history_api_support import (
    PREFIX,
    T0,
    TERMINAL,
    add_execution,
    api_client,
    assert_problem,
    bearer,
    get_ok,
    new_agent,
    new_user,
)

pytestmark = pytest.mark.integration


@pytest.fixture
async def client(api_settings: ApiSettings) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(api_settings, bearer(api_settings, uuid4(), all_scope=True)) as client:
        yield client


def _stats_url(agent_id: UUID) -> str:
    return f"{PREFIX}/agents/{agent_id}/executions/stats"


def _nearest_rank(values: list[int], fraction: float) -> int:
    """The first value whose cumulative share reaches ``fraction`` (percentile_disc)."""
    ordered = sorted(values)
    return ordered[max(math.ceil(fraction * len(ordered)), 1) - 1]


async def test_stats_of_ten_runs_match_a_hand_count(
    db_engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    agent_id, user_id = await new_agent(db_engine)
    # Durations 100, 200, ..., 1000 ms (6 completed, 2 failed, 1 cancelled, 1 timed out) and
    # one running.
    statuses = ["completed"] * 6 + ["failed"] * 2 + ["cancelled", "timed_out"]
    for i, status in enumerate(statuses, start=1):
        start = T0 + timedelta(seconds=i)
        await add_execution(
            db_engine,
            agent_id,
            user_id,
            start=start,
            status=status,
            duration=timedelta(milliseconds=100 * i),
        )
    await add_execution(db_engine, agent_id, user_id, status="running")

    stats = await get_ok(client, _stats_url(agent_id))

    assert stats["agent_id"] == str(agent_id)
    assert stats["counts"] == {
        "pending": 0,
        "running": 1,
        "completed": 6,
        "failed": 2,
        "cancelled": 1,
        "timed_out": 1,
    }
    assert stats["total"] == 11
    # A timed-out run has ended, unsuccessfully: it counts in the denominator.
    assert stats["success_rate"] == pytest.approx(6 / 10)
    # Ten durations 100..1000: ranks ceil(5) = 5, ceil(9.5) = 10, ceil(9.9) = 10.
    # From the rollups' sketch: within 1 % (the response says so).
    assert stats["percentiles"] == "approximate, 1% relative error"
    assert stats["execution_time_ms"] == {
        "count": 10,
        "p50": pytest.approx(500, rel=0.01),
        "p95": pytest.approx(1000, rel=0.01),
        "p99": pytest.approx(1000, rel=0.01),
        "max": pytest.approx(1000, rel=0.01),
    }


async def test_stats_match_python_over_random_runs(
    db_engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    rng = random.Random(4)
    agent_id, user_id = await new_agent(db_engine)
    runs: list[tuple[str, int | None]] = []
    for i in range(137):
        status = rng.choice(STATUSES)
        duration = rng.randint(0, 60_000) if status in TERMINAL else None
        took = None if duration is None else timedelta(milliseconds=duration)
        start = T0 + timedelta(seconds=i)
        await add_execution(db_engine, agent_id, user_id, start=start, status=status, duration=took)
        runs.append((status, duration))

    stats = await get_ok(client, _stats_url(agent_id))

    counts = Counter(status for status, _ in runs)
    durations = [duration for _, duration in runs if duration is not None]
    ended = sum(counts[status] for status in TERMINAL)
    assert stats["counts"] == {status: counts[status] for status in STATUSES}
    assert stats["total"] == len(runs)
    assert stats["success_rate"] == pytest.approx(counts["completed"] / ended)
    assert stats["execution_time_ms"] == {
        "count": len(durations),
        "p50": pytest.approx(_nearest_rank(durations, 0.5), rel=0.01),
        "p95": pytest.approx(_nearest_rank(durations, 0.95), rel=0.01),
        "p99": pytest.approx(_nearest_rank(durations, 0.99), rel=0.01),
        "max": pytest.approx(max(durations), rel=0.01),
    }


async def test_stats_of_an_agent_without_runs_are_zeros_and_nulls(
    client: httpx.AsyncClient,
) -> None:
    stats = await get_ok(client, _stats_url(uuid4()))
    assert stats["counts"] == dict.fromkeys(STATUSES, 0)
    assert (stats["total"], stats["success_rate"]) == (0, None)
    assert stats["execution_time_ms"] == {
        "count": 0,
        "p50": None,
        "p95": None,
        "p99": None,
        "max": None,
    }


async def test_no_terminal_run_means_no_success_rate(
    db_engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    agent_id, user_id = await new_agent(db_engine)
    await add_execution(db_engine, agent_id, user_id, status="pending")
    await add_execution(db_engine, agent_id, user_id, status="running")
    stats = await get_ok(client, _stats_url(agent_id))
    assert (stats["total"], stats["success_rate"]) == (2, None)
    assert stats["execution_time_ms"]["count"] == 0


async def test_stats_cover_only_the_time_window(
    db_engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    agent_id, user_id = await new_agent(db_engine)
    for second, status in enumerate(["failed", "completed", "completed", "failed"]):
        await add_execution(
            db_engine,
            agent_id,
            user_id,
            start=T0 + timedelta(seconds=second),
            status=status,
            duration=timedelta(milliseconds=10 * (second + 1)),
        )
    window: dict[str, Any] = {
        "started_after": "2025-01-15T10:30:01Z",
        "started_before": "2025-01-15T10:30:03Z",
    }

    stats = await get_ok(client, _stats_url(agent_id), **window)

    assert stats["counts"]["completed"] == 2
    assert (stats["total"], stats["success_rate"]) == (2, 1.0)
    assert stats["execution_time_ms"]["max"] == pytest.approx(30, rel=0.01)
    assert stats["started_after"] == "2025-01-15T10:30:01Z"
    assert stats["started_before"] == "2025-01-15T10:30:03Z"


async def test_stats_without_the_all_scope_count_only_the_callers_runs(
    db_engine: AsyncEngine, api_settings: ApiSettings
) -> None:
    agent_id, ada = await new_agent(db_engine)
    grace = await new_user(db_engine, "Grace")
    await add_execution(db_engine, agent_id, ada, status="running")
    for _ in range(3):
        await add_execution(db_engine, agent_id, grace, status="pending")

    async with api_client(api_settings, bearer(api_settings, ada)) as client:
        stats = await get_ok(client, _stats_url(agent_id))

    assert stats["counts"] == {**dict.fromkeys(STATUSES, 0), "running": 1}


async def test_stats_reject_a_time_without_offset(client: httpx.AsyncClient) -> None:
    response = await client.get(_stats_url(uuid4()), params={"started_after": "2025-01-15"})
    body = assert_problem(response, 422)
    assert body["errors"][0]["name"] == "started_after"
