"""Stats from rollups: grouped, as series and cut mid-hour against hand counts; the duration
sketch within its bound against percentile_disc; the rollups equal to the rows after random
writes and prunes; the agents overview and who sees what in it."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from agent_history.api.filters import ExecutionFilter
from agent_history.api.settings import ApiSettings
from agent_history.api.stats import execution_stats
from agent_history.read_model.db import make_engine
from agent_history.read_model.tables import bucket_value
from tests.integration.history_api_support import (
    PREFIX,
    add_execution,
    api_client,
    bearer,
    get_ok,
    new_agent,
    new_user,
)
from tests.support import assert_rollups_match_rows

pytestmark = pytest.mark.integration

H = datetime(2025, 1, 15, 10, tzinfo=UTC)
_APPROX = "approximate, 1% relative error"


@pytest.fixture
async def client(api_settings: ApiSettings) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(api_settings, bearer(api_settings, uuid4(), all_scope=True)) as client:
        yield client


def _ms(value: float) -> Any:
    return pytest.approx(value, rel=0.01)


async def _six_runs(engine: AsyncEngine) -> UUID:
    """Six runs over two days, by hand: (minute after H, status, model, ms, in, out, cost)."""
    agent_id, user_id = await new_agent(engine)
    runs = [
        (5, "completed", "gpt-a", 100, 10, 20, ("0.10", "USD")),
        (40, "failed", "gpt-a", 200, 5, 0, ("0.05", "USD")),
        (70, "completed", "gpt-b", 300, 7, 3, ("0.20", "EUR")),
        (110, "completed", None, 400, None, None, None),
        (140, "running", "gpt-b", None, None, None, None),
        (23 * 60, "cancelled", "gpt-a", 50, 1, 1, ("0.01", "USD")),
    ]
    for minute, status, model, ms, tokens_in, tokens_out, cost in runs:
        await add_execution(
            engine,
            agent_id,
            user_id,
            start=H + timedelta(minutes=minute),
            status=status,
            duration=None if ms is None else timedelta(milliseconds=ms),
            model=model,
            input_tokens=tokens_in,
            output_tokens=tokens_out,
            cost=None if cost is None else Decimal(cost[0]),
            cost_currency=None if cost is None else cost[1],
        )
    return agent_id


def _url(agent_id: UUID) -> str:
    return f"{PREFIX}/agents/{agent_id}/executions/stats"


async def test_all_time_stats_sum_tokens_and_cost_by_hand(
    db_engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    agent_id = await _six_runs(db_engine)
    stats = await get_ok(client, _url(agent_id))

    assert (stats["source"], stats["percentiles"]) == ("rollups", _APPROX)
    assert stats["total"] == 6
    assert stats["counts"] == {
        **dict.fromkeys(("pending", "timed_out"), 0),
        **{"running": 1, "completed": 3, "failed": 1, "cancelled": 1},
    }
    assert stats["success_rate"] == pytest.approx(3 / 5)
    # Durations 50, 100, 200, 300, 400: nearest ranks 3, 5, 5.
    durations = stats["execution_time_ms"]
    assert durations["count"] == 5
    assert [durations[p] for p in ("p50", "p95", "p99", "max")] == [
        _ms(200),
        _ms(400),
        _ms(400),
        _ms(400),
    ]
    assert stats["tokens"] == {
        "input": {"sum": 23, "count": 4, "average": 5.75},
        "output": {"sum": 24, "count": 4, "average": 6.0},
    }
    assert set(stats["cost"]) == {"EUR", "USD"}
    usd = stats["cost"]["USD"]
    assert (Decimal(usd["sum"]), usd["count"]) == (Decimal("0.16"), 3)
    assert Decimal(usd["average"]) == Decimal("0.16") / 3
    assert stats["cost"]["EUR"] == {"sum": "0.20", "count": 1, "average": "0.20"}


async def test_grouped_by_model(db_engine: AsyncEngine, client: httpx.AsyncClient) -> None:
    agent_id = await _six_runs(db_engine)
    stats = await get_ok(client, _url(agent_id), group_by="model")
    groups = {g["key"]: g for g in stats["groups"]}

    assert {key: g["total"] for key, g in groups.items()} == {"gpt-a": 3, "gpt-b": 2, None: 1}
    assert groups["gpt-a"]["success_rate"] == pytest.approx(1 / 3)
    assert groups["gpt-a"]["execution_time_ms"]["p50"] == _ms(100)
    assert groups["gpt-a"]["tokens"]["input"] == {"sum": 16, "count": 3, "average": 16 / 3}
    assert groups["gpt-b"]["success_rate"] == 1.0
    assert groups["gpt-b"]["execution_time_ms"]["count"] == 1
    assert groups[None]["cost"] == {}
    assert stats["total"] == 6


async def test_grouped_by_status_as_an_hourly_series_cut_mid_hour(
    db_engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    agent_id = await _six_runs(db_engine)
    stats = await get_ok(client, _url(agent_id), group_by="status")
    groups = {g["key"]: g for g in stats["groups"]}
    assert {key: g["total"] for key, g in groups.items()} == {
        "completed": 3,
        "failed": 1,
        "running": 1,
        "cancelled": 1,
    }
    # Completed: 100, 300 and 400 ms, nearest ranks 2, 3, 3.
    completed = groups["completed"]["execution_time_ms"]
    assert [completed[p] for p in ("p50", "p95", "max")] == [_ms(300), _ms(400), _ms(400)]
    assert groups["failed"]["execution_time_ms"]["p50"] == _ms(200)
    assert groups["running"]["execution_time_ms"] == {
        "count": 0,
        **dict.fromkeys(("p50", "p95", "p99", "max")),
    }
    # Over all statuses as without a group: 50 to 400 ms, the median 200.
    assert (stats["total"], stats["execution_time_ms"]["p50"]) == (6, _ms(200))

    # 10:30-12:00: the failed run at 10:40 from the edge rows, the two at 11:10 and 11:50
    # from the hour's rollups; the completed run at 10:05 left out.
    window = {"started_after": "2025-01-15T10:30:00Z", "started_before": "2025-01-15T12:00:00Z"}
    cut = await get_ok(client, _url(agent_id), group_by="status", interval="hour", **window)
    series = {
        g["key"]: [(p["start"][11:16], p["total"]) for p in g["series"]] for g in cut["groups"]
    }
    assert series == {"failed": [("10:00", 1)], "completed": [("11:00", 2)]}
    completed = next(g for g in cut["groups"] if g["key"] == "completed")
    assert completed["execution_time_ms"]["p50"] == _ms(300)
    assert completed["series"][0]["execution_time_ms"]["max"] == _ms(400)


async def test_grouped_by_user_and_tag(db_engine: AsyncEngine, client: httpx.AsyncClient) -> None:
    agent_id, ada = await new_agent(db_engine)
    grace = await new_user(db_engine, "Grace")
    for user, tags, ms in ((ada, ["a", "b"], 10), (grace, ["b"], 20), (grace, None, 30)):
        await add_execution(
            db_engine,
            agent_id,
            user,
            status="completed",
            duration=timedelta(milliseconds=ms),
            tags=tags,
        )

    by_user = await get_ok(client, _url(agent_id), group_by="user")
    assert (by_user["source"], by_user["percentiles"]) == ("rows", "exact")
    assert {g["key"]: g["total"] for g in by_user["groups"]} == {str(ada): 1, str(grace): 2}
    by_tag = await get_ok(client, _url(agent_id), group_by="tag")
    # A run with two tags counts in both; the untagged one under null.
    assert {g["key"]: g["total"] for g in by_tag["groups"]} == {"b": 2, "a": 1, None: 1}
    assert {g["key"]: g["execution_time_ms"]["p50"] for g in by_tag["groups"]} == {
        "b": 10,
        "a": 10,
        None: 30,
    }
    assert by_tag["total"] == 3


async def test_an_hourly_series_cut_mid_hour_counts_the_edge_rows(
    db_engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    agent_id = await _six_runs(db_engine)
    # 10:30-12:00 holds runs at 10:40, 11:10 and 11:50, not the one at 10:05 in the same hour.
    window = {"started_after": "2025-01-15T10:30:00Z", "started_before": "2025-01-15T12:00:00Z"}
    stats = await get_ok(client, _url(agent_id), interval="hour", **window)

    assert stats["total"] == 3
    assert [(p["start"], p["total"]) for p in stats["series"]] == [
        ("2025-01-15T10:00:00Z", 1),
        ("2025-01-15T11:00:00Z", 2),
    ]
    first, second = stats["series"]
    assert (first["counts"]["failed"], first["success_rate"]) == (1, 0.0)
    assert first["execution_time_ms"]["p50"] == _ms(200)
    assert second["execution_time_ms"]["p50"] == _ms(300)
    assert second["tokens"]["input"] == {"sum": 7, "count": 1, "average": 7.0}


async def test_a_daily_series_over_a_range_cut_at_both_ends(
    db_engine: AsyncEngine, client: httpx.AsyncClient
) -> None:
    agent_id = await _six_runs(db_engine)
    everything = await get_ok(client, _url(agent_id), interval="day")
    assert [(p["start"], p["total"]) for p in everything["series"]] == [
        ("2025-01-15T00:00:00Z", 5),
        ("2025-01-16T00:00:00Z", 1),
    ]
    # From 10:30 on the 15th to 09:30 on the 16th: edge rows, hours and no whole day.
    window = {"started_after": "2025-01-15T10:30:00Z", "started_before": "2025-01-16T09:30:00Z"}
    cut = await get_ok(client, _url(agent_id), interval="day", group_by="model", **window)
    assert cut["total"] == 5
    assert [(p["start"], p["total"]) for p in cut["series"]] == [
        ("2025-01-15T00:00:00Z", 4),
        ("2025-01-16T00:00:00Z", 1),
    ]
    gpt_a = next(g for g in cut["groups"] if g["key"] == "gpt-a")
    assert [(p["start"], p["total"]) for p in gpt_a["series"]] == [
        ("2025-01-15T00:00:00Z", 1),
        ("2025-01-16T00:00:00Z", 1),
    ]
    before = await get_ok(client, _url(agent_id), started_before="2025-01-15T10:06:00Z")
    assert before["total"] == 1


async def test_the_callers_own_stats_come_from_rows_exactly(
    db_engine: AsyncEngine, api_settings: ApiSettings
) -> None:
    agent_id, ada = await new_agent(db_engine)
    grace = await new_user(db_engine, "Grace")
    await add_execution(db_engine, agent_id, ada, status="completed", duration=timedelta(seconds=1))
    await add_execution(db_engine, agent_id, grace, status="failed", duration=timedelta(seconds=2))
    async with api_client(api_settings, bearer(api_settings, ada)) as client:
        stats = await get_ok(client, _url(agent_id), group_by="model", interval="day")
        by_status = await get_ok(client, _url(agent_id), group_by="status")
    assert (stats["source"], stats["percentiles"], stats["total"]) == ("rows", "exact", 1)
    assert stats["execution_time_ms"]["p50"] == 1000
    assert (by_status["source"], by_status["percentiles"]) == ("rows", "exact")
    assert [(g["key"], g["execution_time_ms"]["p50"]) for g in by_status["groups"]] == [
        ("completed", 1000)
    ]


async def test_stats_refuse_an_unknown_group(client: httpx.AsyncClient) -> None:
    response = await client.get(_url(uuid4()), params={"group_by": "colour"})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


_SPREAD = st.lists(
    st.one_of(st.integers(0, 20), st.integers(0, 100_000), st.integers(0, 2**40)),
    min_size=1,
    max_size=200,
)


@settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(durations=_SPREAD, seed=st.integers(0, 2**16))
def test_the_sketch_is_within_one_percent_of_percentile_disc(
    database_url: str, durations: list[int], seed: int
) -> None:
    asyncio.run(_sketch_against_rows(database_url, durations, seed))


# Per status, and over every status (status NULL): the nearest ranks, and their buckets.
_EXACT = text("""
SELECT status, n, p50, p95, p99, max, execution_duration_bucket(p50) AS b50,
    execution_duration_bucket(p95) AS b95, execution_duration_bucket(p99) AS b99,
    execution_duration_bucket(max) AS bmax
FROM (
    SELECT status, count(*) AS n,
        percentile_disc(0.5) WITHIN GROUP (ORDER BY execution_time_ms) AS p50,
        percentile_disc(0.95) WITHIN GROUP (ORDER BY execution_time_ms) AS p95,
        percentile_disc(0.99) WITHIN GROUP (ORDER BY execution_time_ms) AS p99,
        max(execution_time_ms) AS max
    FROM agent_executions
    WHERE agent_id = :a AND execution_start >= :after AND execution_start < :before
    GROUP BY ROLLUP (status)) ranked
""")


async def _sketch_against_rows(database_url: str, durations: list[int], seed: int) -> None:
    engine = make_engine(ApiSettings(database_url=database_url))
    try:
        agent_id, user_id = await new_agent(engine)
        rng = random.Random(seed)
        # Over ~three days, so months, days, hours and edge rows all take part.
        minutes = [rng.randrange(0, 3 * 24 * 60) for _ in durations]
        statuses = [rng.choice(("completed", "failed", "cancelled")) for _ in durations]
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO agent_executions (id, agent_id, user_id, status, "
                    "execution_start, execution_end, input_rank) "
                    "SELECT gen_random_uuid(), :agent, :user, s, "
                    "CAST(:t0 AS timestamptz) + m * interval '1 minute', "
                    "CAST(:t0 AS timestamptz) + m * interval '1 minute' "
                    "+ d * interval '1 millisecond', 0 "
                    "FROM unnest(CAST(:m AS int[]), CAST(:d AS bigint[]), CAST(:s AS text[])) "
                    "AS x(m, d, s)"
                ),
                {
                    "agent": agent_id,
                    "user": user_id,
                    "t0": H,
                    "m": minutes,
                    "d": durations,
                    "s": statuses,
                },
            )
        after = H + timedelta(minutes=rng.randrange(0, 24 * 60), seconds=17)
        before = after + timedelta(minutes=rng.randrange(60, 2 * 24 * 60), seconds=29)
        where = ExecutionFilter(agent_id=agent_id, started_after=after, started_before=before)
        sketched = await execution_stats(engine, where)
        by_status = await execution_stats(engine, where, group_by="status")
        async with engine.connect() as conn:
            bounds = {"a": agent_id, "after": after, "before": before}
            exact = {row.status: row for row in await conn.execute(_EXACT, bounds)}
        groups = {g.key: g for g in by_status.groups or []}
        assert set(groups) == set(exact) - {None}
        # Ungrouped, the grouped request's total (its per-status sketches merged), each status.
        levels = [(sketched, exact.get(None)), (by_status, exact.get(None))]
        for got, want in [*levels, *((groups[k], exact[k]) for k in groups)]:
            assert got.execution_time_ms.count == got.total == (want.n if want else 0)
            for name, bucket in (("p50", "b50"), ("p95", "b95"), ("p99", "b99"), ("max", "bmax")):
                value, have = getattr(want, name, None), getattr(got.execution_time_ms, name)
                if value is None:
                    assert have is None
                    continue
                # Nearest ranks both: the sketch reports the very bucket of the exact value.
                assert have == bucket_value(getattr(want, bucket)), (name, value, have)
                assert abs(have - value) <= 0.01 * value * (1 + 1e-9), (name, value, have)
    finally:
        await engine.dispose()


async def test_rollups_equal_the_rows_after_random_writes_and_prunes(
    db_engine: AsyncEngine,
) -> None:
    rng = random.Random(11)
    agents = [(await new_agent(db_engine)) for _ in range(3)]
    ids: list[UUID] = []
    statuses = ("pending", "running", "completed", "failed", "cancelled", "timed_out")
    for _ in range(6):
        async with db_engine.begin() as conn:
            for _ in range(rng.randint(5, 40)):
                agent_id, user_id = rng.choice(agents)
                start = H - timedelta(days=rng.randrange(0, 60), minutes=rng.randrange(0, 1440))
                ended = rng.random() < 0.7
                run_id = rng.choice(ids) if ids and rng.random() < 0.3 else uuid4()
                row: dict[str, Any] = {
                    "id": run_id,
                    "agent": agent_id,
                    "user": user_id,
                    "status": rng.choice(statuses[2:] if ended else statuses[:2]),
                    "start": start,
                    "end": start + timedelta(milliseconds=rng.randrange(0, 10**6))
                    if ended
                    else None,
                    "model": rng.choice(("m1", "m2", None)),
                    "tin": rng.choice((None, rng.randrange(0, 10**6))),
                    "tout": rng.choice((None, rng.randrange(0, 10**6))),
                    "cost": rng.choice((None, Decimal(rng.randrange(0, 10**6)) / 10**4)),
                }
                row["currency"] = None if row["cost"] is None else rng.choice(("USD", "EUR"))
                ids.append(run_id)
                # The projector's way: an upsert that rewrites a run it has seen.
                await conn.execute(
                    text(
                        "INSERT INTO agent_executions AS t (id, agent_id, user_id, status, "
                        "execution_start, execution_end, input_rank, model, input_tokens, "
                        "output_tokens, cost, cost_currency) VALUES (:id, :agent, :user, "
                        ":status, :start, :end, 0, :model, :tin, :tout, :cost, :currency) "
                        "ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, "
                        "execution_end = EXCLUDED.execution_end, model = EXCLUDED.model, "
                        "input_tokens = EXCLUDED.input_tokens, cost = EXCLUDED.cost, "
                        "cost_currency = EXCLUDED.cost_currency"
                    ),
                    row,
                )
        await assert_rollups_match_rows(db_engine, [a for a, _ in agents])
        async with db_engine.begin() as conn:
            # Prune's statement, on these agents' oldest runs only.
            cutoff = H - timedelta(days=rng.randrange(30, 60))
            await conn.execute(
                text(
                    "DELETE FROM agent_executions WHERE agent_id = ANY(:agents) "
                    "AND execution_start < :cutoff AND random() < 0.5"
                ),
                {"agents": [a for a, _ in agents], "cutoff": cutoff},
            )
        await assert_rollups_match_rows(db_engine, [a for a, _ in agents])


async def test_agents_show_what_the_caller_may_see(
    db_engine: AsyncEngine, api_settings: ApiSettings
) -> None:
    mine, ada = await new_agent(db_engine)
    theirs, grace = await new_agent(db_engine, user_name="Grace")
    at = datetime(2025, 3, 1, tzinfo=UTC)
    await add_execution(db_engine, mine, ada, start=at, status="completed", duration=timedelta(1))
    await add_execution(db_engine, mine, grace, start=at, status="failed", duration=timedelta(2))
    await add_execution(db_engine, theirs, grace, start=at, status="completed")

    async with api_client(api_settings, bearer(api_settings, ada)) as client:
        page = await get_ok(client, f"{PREFIX}/agents")
    assert page["total"] == 1
    assert page["percentiles"] == "exact"
    (only,) = page["agents"]
    assert (only["id"], only["total"], only["success_rate"]) == (str(mine), 1, 1.0)
    assert only["p95_ms"] == 86_400_000
    assert only["last_run_at"] == "2025-03-01T00:00:00Z"

    seen: dict[str, dict[str, Any]] = {}
    async with api_client(api_settings, bearer(api_settings, uuid4(), all_scope=True)) as client:
        offset = 0
        while True:
            page = await get_ok(client, f"{PREFIX}/agents", limit=100, offset=offset)
            seen.update({a["id"]: a for a in page["agents"]})
            offset += 100
            if offset >= page["total"]:
                break
    assert page["percentiles"] == _APPROX
    assert (seen[str(mine)]["total"], seen[str(mine)]["success_rate"]) == (2, 0.5)
    assert seen[str(mine)]["p95_ms"] == _ms(2 * 86_400_000)
    assert seen[str(theirs)]["total"] == 1


async def test_agents_refuse_a_page_too_large(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{PREFIX}/agents", params={"limit": 101})
    assert response.status_code == 422
