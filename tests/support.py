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
from agent_history.read_model.tables import agent_executions
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
