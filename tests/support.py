"""Helpers shared by the tests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar
from uuid import UUID

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from agent_history.contract.events import Event
from agent_history.projector.checkpoints import read_checkpoints
from agent_history.projector.core.fold import fold_all
from agent_history.projector.replay import ReplayResult
from agent_history.projector.settings import ProjectorSettings
from agent_history.read_model.tables import SKETCHED_BY_DIFFERENCE, agent_executions
from agent_history.server.bootstrap import build_replay

T = TypeVar("T")
# Every column of agent_executions but the bookkeeping times (created_at, updated_at).
COLUMNS = [c.name for c in agent_executions.columns if c.name not in ("created_at", "updated_at")]


async def eventually(
    probe: Callable[[], Awaitable[T]],
    check: Callable[[T], bool],
    *,
    what: str,
    within: float = 30.0,
    interval: float = 0.05,
) -> T:
    """Poll ``probe`` until ``check`` holds; fail saying what was expected and what was seen."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        seen = await probe()
        if check(seen):
            return seen
        if loop.time() > deadline:
            pytest.fail(f"timed out after {within}s waiting for {what}; last seen: {seen!r}")
        await asyncio.sleep(interval)


async def caught_up(engine: AsyncEngine, group: str, topic: str, sent: Iterable[Any]) -> None:
    """Wait until the projector's checkpoints are past every record in ``sent``.

    ``sent`` holds the RecordMetadata the producer got back; once the checkpoint of each
    partition is beyond the last offset sent there, all of those records were applied.
    """
    wanted: dict[int, int] = {}
    for meta in sent:
        wanted[meta.partition] = max(wanted.get(meta.partition, 0), meta.offset + 1)

    async def positions() -> dict[int, int]:
        async with engine.connect() as conn:
            return await read_checkpoints(conn, group, topic)

    await eventually(
        positions,
        lambda seen: all(seen.get(p, 0) >= o for p, o in wanted.items()),
        what=f"checkpoints of {group} on {topic} to reach {wanted}",
    )


async def assert_counts_match_rows(engine: AsyncEngine) -> None:
    """The status counts kept by the triggers equal counting the rows, for every key."""
    async with engine.connect() as conn:
        for key in ("agent_id", "user_id"):
            kept = await conn.execute(
                text(f"SELECT {key}, status, n FROM execution_counts_by_{key[:-3]} WHERE n <> 0")
            )
            counted = await conn.execute(
                text(f"SELECT {key}, status, count(*) FROM agent_executions GROUP BY 1, 2")
            )
            assert {tuple(r) for r in kept} == {tuple(r) for r in counted}, f"{key} counts drifted"


async def table(engine: AsyncEngine) -> dict[UUID, dict[str, Any]]:
    """Every row of agent_executions, by id, in COLUMNS."""
    async with engine.connect() as conn:
        rows = await conn.execute(select(*(agent_executions.c[c] for c in COLUMNS)))
        return {row.id: row._asdict() for row in rows}


def reference(events: list[Event]) -> dict[UUID, dict[str, Any]]:
    """What table() must hold after these events: the fold's rows."""
    rows = fold_all(events)
    return {key: {c: getattr(row, c) for c in COLUMNS} for key, row in rows.items()}


async def replay(settings: ProjectorSettings) -> ReplayResult:
    """`agent-history replay`, wired as the command wires it."""
    async with build_replay(settings) as run:
        return await run()


_ROLLED = """
SELECT agent_id, p.period, date_trunc(p.period, execution_start, 'UTC'), COALESCE(model, ''),
    status, COALESCE(cost_currency, ''), count(*), count(execution_time_ms),
    COALESCE(sum(input_tokens), 0), count(input_tokens), COALESCE(sum(output_tokens), 0),
    count(output_tokens), COALESCE(sum(cost), 0)
FROM agent_executions CROSS JOIN (VALUES ('hour'), ('day'), ('month')) AS p(period)
WHERE {where} GROUP BY 1, 2, 3, 4, 5, 6
"""
_KEPT = """
SELECT agent_id, period, bucket_start, model, status, cost_currency, n, timed, input_tokens,
    input_tokens_n, output_tokens, output_tokens_n, cost
FROM execution_rollups WHERE ({where}) AND n <> 0
"""
_SKETCHED = """
SELECT agent_id, p.period, date_trunc(p.period, execution_start, 'UTC'), {model}
    execution_duration_bucket(execution_time_ms), count(*)
FROM agent_executions CROSS JOIN (VALUES ('hour'), ('day'), ('month')) AS p(period)
WHERE ({where}) AND execution_time_ms IS NOT NULL AND {only} GROUP BY {key}
"""
_KEPT_SKETCH = """
SELECT agent_id, period, bucket_start, {model} lo + o - 1, n
FROM {table}, unnest(counts) WITH ORDINALITY AS u(n, o)
WHERE ({where}) AND n <> 0
"""
# Sketch arrays are trimmed: a zero at either end is a bucket kept for nothing.
_UNTRIMMED = """
SELECT * FROM {table}
WHERE ({where}) AND (counts[1] = 0 OR counts[cardinality(counts)] = 0)
"""
_SKETCHES = {
    "execution_duration_sketches": ("COALESCE(model, ''),", "model,", "1, 2, 3, 4, 5", "true"),
    "execution_duration_sketches_by_status": (
        "status,",
        "status,",
        "1, 2, 3, 4, 5",
        f"status <> '{SKETCHED_BY_DIFFERENCE}'",
    ),
    "execution_duration_sketches_all_models": ("", "", "1, 2, 3, 4", "true"),
}


async def assert_rollups_match_rows(
    engine: AsyncEngine, agent_ids: Iterable[UUID] | None = None
) -> None:
    """The rollups and duration sketches kept by the triggers equal a recomputation from the
    rows (of these agents, or of all)."""
    ids = [str(a) for a in agent_ids] if agent_ids is not None else None
    where = "true" if ids is None else "agent_id = ANY(CAST(:ids AS uuid[]))"
    values = {} if ids is None else {"ids": ids}
    async with engine.connect() as conn:
        pairs = [(_KEPT, _ROLLED)] + [
            (
                _KEPT_SKETCH.format(table=table, model=kept, where="{where}"),
                _SKETCHED.format(model=rolled, key=key, only=only, where="{where}"),
            )
            for table, (rolled, kept, key, only) in _SKETCHES.items()
        ]
        for kept, counted in pairs:
            have = {tuple(r) for r in await conn.execute(text(kept.format(where=where)), values)}
            want = {tuple(r) for r in await conn.execute(text(counted.format(where=where)), values)}
            assert have == want, (
                f"rollups drifted: kept-only {have - want}, rows-only {want - have}"
            )
        for table in _SKETCHES:
            untrimmed = (
                await conn.execute(text(_UNTRIMMED.format(table=table, where=where)), values)
            ).all()
            assert not untrimmed, f"{table}: zeros at an end: {untrimmed}"
