"""Erasing a user on the real broker and database: gone from the read model, kept out by the
live projector and by replay, and everyone else unchanged.

Replay acts on the whole read model, so each test has a database of its own.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from agent_history.contract.events import Event, event_from_dict
from agent_history.projector import replay as replay_module
from agent_history.projector.erasure import erase_user
from agent_history.projector.settings import ProjectorSettings
from tests.conftest import projecting
from tests.integration.test_replay import history, publish
from tests.support import assert_counts_match_rows, caught_up, reference, replay, table

pytestmark = pytest.mark.integration

T0 = datetime(2025, 3, 1, tzinfo=UTC)


def event(kind: str, execution: UUID, agent: UUID, user: UUID, at: datetime, **data: Any) -> Event:
    ids = {"execution_id": str(execution), "agent_id": str(agent), "user_id": str(user)}
    if kind in ("ExecutionQueued", "ExecutionStarted"):
        data.setdefault("input_data", {"secret": f"of {user}"})
    return event_from_dict(
        {
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "source": "test",
            "type": kind,
            "subject": str(execution),
            "time": at.isoformat(),
            "data": ids | data,
        }
    )


def runs(user: UUID, agent: UUID, n: int, start: datetime, name: str = "Ada") -> list[Event]:
    """``n`` runs of ``user``, each Started (naming the user) and Completed a second later."""
    events: list[Event] = []
    for i in range(n):
        execution, at = uuid.uuid4(), start + timedelta(minutes=i)
        ended = at + timedelta(seconds=1)
        events.append(event("ExecutionStarted", execution, agent, user, at, user_name=name))
        events.append(event("ExecutionCompleted", execution, agent, user, ended))
    return events


async def snapshot(engine: AsyncEngine) -> dict[str, set[tuple[Any, ...]]]:
    """What a reader sees of the read model: names, and status counts that are not zero."""
    queries = {
        "users": "SELECT id, name, name_time FROM users",
        "agents": "SELECT id, name, name_time FROM agents",
        "by_user": "SELECT user_id, status, n FROM execution_counts_by_user WHERE n <> 0",
        "by_agent": "SELECT agent_id, status, n FROM execution_counts_by_agent WHERE n <> 0",
    }
    async with engine.connect() as conn:
        return {k: {tuple(r) for r in await conn.execute(text(q))} for k, q in queries.items()}


async def traces(engine: AsyncEngine, user: UUID) -> dict[str, int]:
    """Rows anywhere in the read model that name ``user``."""
    queries = {
        "executions": "SELECT count(*) FROM agent_executions WHERE user_id = :u",
        "users": "SELECT count(*) FROM users WHERE id = :u",
        "counts": "SELECT count(*) FROM execution_counts_by_user WHERE user_id = :u",
    }
    async with engine.connect() as conn:
        return {k: int(await conn.scalar(text(q), {"u": user}) or 0) for k, q in queries.items()}


async def dropped_events(engine: AsyncEngine, user: UUID) -> int:
    async with engine.connect() as conn:
        query = "SELECT dropped_events FROM erased_users WHERE user_id = :u"
        return int(await conn.scalar(text(query), {"u": user}) or 0)


NOTHING = {"executions": 0, "users": 0, "counts": 0}


@pytest.mark.usefixtures("projector")
async def test_erase_then_late_events_are_dropped_counted_and_replay_agrees(
    settings: ProjectorSettings,
    replay_settings: ProjectorSettings,
    engine: AsyncEngine,
    kafka_bootstrap: str,
) -> None:
    rng = random.Random(10)
    ada, shared_agent = uuid.uuid4(), uuid.uuid4()
    # Her agent is another user's too (an agent that only an erased user's events named is
    # left in agents by the erase, but not named by a replay: see the README).
    others = history(rng, 120, T0) + runs(uuid.uuid4(), shared_agent, 2, T0, name="Grace")
    adas = runs(ada, shared_agent, 25, T0)
    sent = await publish(kafka_bootstrap, settings.topic, others + adas)
    await caught_up(engine, settings.consumer_group, settings.topic, sent)
    before = await snapshot(engine)

    erased = await erase_user(engine, ada, batch_size=7)

    assert (erased.first, erased.executions, erased.names) == (True, 25, 1)
    # Her completed count, brought to zero and deleted; and a running (or pending) one already at
    # zero when a batch held a run's start without its end: the counts keep zero rows.
    assert 1 <= erased.status_counts <= 3, "her counts, brought to zero and deleted"
    assert await traces(engine, ada) == NOTHING
    assert await table(engine) == reference(others)
    await assert_counts_match_rows(engine)
    after = await snapshot(engine)
    assert after["users"] == {u for u in before["users"] if u[0] != ada}
    assert after["agents"] == before["agents"]

    # Late events of hers: new runs, and an end of a run already erased; others go on.
    late = runs(ada, shared_agent, 3, T0 + timedelta(days=1))
    late.append(
        event("ExecutionFailed", adas[0].execution_id, shared_agent, ada, T0, error_message="x")
    )
    more = history(rng, 30, T0 + timedelta(days=2))
    sent += await publish(kafka_bootstrap, settings.topic, late + more)
    await caught_up(engine, settings.consumer_group, settings.topic, sent)

    assert await traces(engine, ada) == NOTHING
    assert await dropped_events(engine, ada) == len(late)
    assert await table(engine) == reference(others + more)
    live = await snapshot(engine)

    result = await replay(replay_settings)

    assert result.erased == len(adas) + len(late)
    assert await traces(engine, ada) == NOTHING
    assert await table(engine) == reference(others + more)
    assert await snapshot(engine) == live, "everyone else is unchanged by the replay"
    await assert_counts_match_rows(engine)
    assert await dropped_events(engine, ada) == len(late), "replay counts only in its result"

    again = await erase_user(engine, ada)
    assert (again.first, again.erased_at, again.executions, again.names) == (
        False,
        erased.erased_at,
        0,
        0,
    )
    assert (again.executions_removed, again.dropped_events) == (25, len(late))


@pytest.mark.usefixtures("projector")
async def test_an_erase_while_her_events_stream_in_leaves_nothing_behind(
    settings: ProjectorSettings,
    replay_settings: ProjectorSettings,
    engine: AsyncEngine,
    kafka_bootstrap: str,
) -> None:
    ada, agent = uuid.uuid4(), uuid.uuid4()
    others = history(random.Random(11), 50, T0)
    sent = await publish(kafka_bootstrap, settings.topic, others)

    async def stream() -> list[Any]:
        published: list[Any] = []
        for wave in range(20):
            published += await publish(
                kafka_bootstrap, settings.topic, runs(ada, agent, 10, T0 + timedelta(hours=wave))
            )
            await asyncio.sleep(0.02)
        return published

    streaming = asyncio.create_task(stream())
    await asyncio.sleep(0.1)
    erased = await erase_user(engine, ada, batch_size=5)
    sent += await streaming
    await caught_up(engine, settings.consumer_group, settings.topic, sent)

    assert erased.first
    assert await traces(engine, ada) == NOTHING, "no batch put back what the erase deleted"
    assert await table(engine) == reference(others)
    await assert_counts_match_rows(engine)
    removed = erased.executions
    assert removed + await dropped_events(engine, ada) > 0

    result = await replay(replay_settings)
    assert await traces(engine, ada) == NOTHING
    assert await table(engine) == reference(others)
    assert result.erased == 20 * 10 * 2


@pytest.mark.usefixtures("projector")
async def test_an_erase_while_replay_loads_leaves_nothing_in_the_swapped_in_tables(
    settings: ProjectorSettings,
    replay_settings: ProjectorSettings,
    engine: AsyncEngine,
    kafka_bootstrap: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Replay read the erasures before loading, so her runs are in the rebuild, counted by its
    # one-pass fill; the swap takes them out again, and her status counts with them.
    ada, agent = uuid.uuid4(), uuid.uuid4()
    others = history(random.Random(17), 40, T0)
    sent = await publish(kafka_bootstrap, settings.topic, others + runs(ada, agent, 6, T0))
    await caught_up(engine, settings.consumer_group, settings.topic, sent)
    loaded = replay_module._load

    async def erasing_meanwhile(*args: Any) -> None:
        await loaded(*args)
        await erase_user(engine, ada)

    monkeypatch.setattr(replay_module, "_load", erasing_meanwhile)
    await replay(replay_settings)

    assert await traces(engine, ada) == NOTHING
    assert await table(engine) == reference(others)
    await assert_counts_match_rows(engine)


async def test_a_user_with_no_runs_is_erased_and_stays_out(
    settings: ProjectorSettings, engine: AsyncEngine, kafka_bootstrap: str
) -> None:
    nobody = uuid.uuid4()

    erased = await erase_user(engine, nobody)

    assert (erased.first, erased.executions, erased.names, erased.status_counts) == (
        True,
        0,
        0,
        0,
    )
    sent = await publish(kafka_bootstrap, settings.topic, runs(nobody, uuid.uuid4(), 2, T0))
    async with projecting(settings):
        await caught_up(engine, settings.consumer_group, settings.topic, sent)
    assert await traces(engine, nobody) == NOTHING
    assert await dropped_events(engine, nobody) == 4
