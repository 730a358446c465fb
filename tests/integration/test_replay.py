"""Replay and retention on the real broker and database.

Replay and prune act on the whole read model, so each of these tests has a database of its
own, not the session's.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import random
import signal
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, get_args

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from agent_history.api.app import create_app
from agent_history.api.auth import mint_token
from agent_history.api.settings import ApiSettings
from agent_history.contract.events import (
    Event,
    EventType,
    encode_event,
    event_from_dict,
    record_key,
)
from agent_history.projector import replay as replay_module
from agent_history.projector.loader import Loader, read_from_start, replay_consumer
from agent_history.projector.replay import SHADOW, ReplayError, _create_shadow, _load
from agent_history.projector.replay import replay as replay_into_shadow
from agent_history.projector.retention import prune
from agent_history.projector.settings import ProjectorSettings
from agent_history.projector.shares import LoaderFailed
from agent_history.read_model.migrate import MIGRATIONS, alembic_config, head_revision
from tests.support import (
    assert_counts_match_rows,
    assert_rollups_match_rows,
    caught_up,
    reference,
    replay,
    table,
)

pytestmark = pytest.mark.integration

KINDS: list[str] = list(get_args(EventType))


def history(rng: random.Random, executions: int, start: datetime) -> list[Event]:
    """Events of ``executions`` runs with random kinds and times, duplicates included."""
    agent_ids = [uuid.uuid4() for _ in range(3)]
    events: list[Event] = []
    for n in range(executions):
        eid, at = uuid.uuid4(), start + timedelta(minutes=n)
        ids = {
            "execution_id": str(eid),
            "agent_id": str(rng.choice(agent_ids)),
            "user_id": str(uuid.uuid4()),
        }
        for kind in rng.sample(KINDS, k=rng.randint(1, 4)):
            data: dict[str, Any] = dict(ids)
            time = at + timedelta(milliseconds=rng.randrange(0, 5000))
            if kind in ("ExecutionQueued", "ExecutionStarted"):
                data["input_data"] = {"n": n, "kind": kind}
                data["timeout_ms"] = rng.choice((None, 1000))
                data["model"] = rng.choice(("model-a", "model-b"))
            elif kind == "ExecutionFailed":
                data["error_message"] = f"error {n}"
            elif kind == "ExecutionCompleted":
                data["output_data"] = [n]
            if kind in ("ExecutionFailed", "ExecutionCompleted"):
                cost = {"amount": f"0.{n:04d}", "currency": rng.choice(("USD", "EUR"))}
                data["usage"] = {"input_tokens": n, "output_tokens": 2 * n, "cost": cost}
            elif kind == "ExecutionTimedOut":
                seen = (time - timedelta(seconds=60)).isoformat()
                data.update(reason="worker_lost", last_seen_at=seen, since=seen, limit_ms=60_000)
            events.append(
                event_from_dict(
                    {
                        "specversion": "1.0",
                        "id": str(uuid.uuid4()),
                        "source": "test",
                        "type": kind,
                        "subject": str(eid),
                        "data": data,
                        "time": time.isoformat(),
                    }
                )
            )
    return events + rng.sample(events, k=len(events) // 10)


async def publish(bootstrap: str, topic: str, events: list[Event]) -> list[Any]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    try:
        sent = [
            await producer.send(topic, encode_event(e), key=record_key(e.execution_id))
            for e in events
        ]
        return list(await asyncio.gather(*sent))
    finally:
        await producer.stop()


@pytest.mark.usefixtures("projector")
async def test_replay_equals_live_projection_and_api_answers_throughout(
    settings: ProjectorSettings,
    replay_settings: ProjectorSettings,
    engine: AsyncEngine,
    kafka_bootstrap: str,
) -> None:
    rng = random.Random(3)
    first = history(rng, 300, datetime(2025, 1, 1, tzinfo=UTC))
    sent = await publish(kafka_bootstrap, settings.topic, first)
    await caught_up(engine, settings.consumer_group, settings.topic, sent)
    live = await table(engine)
    assert live == reference(first)
    await assert_counts_match_rows(engine)
    await assert_rollups_match_rows(engine)

    some = rng.sample(sorted(live), k=5)
    api = ApiSettings(database_url=settings.database_url)
    app = create_app(api)
    answers: list[int] = []
    done = asyncio.Event()

    async def keep_asking(client: httpx.AsyncClient) -> None:
        while not done.is_set():
            for eid in some:
                answers.append(
                    (await client.get(f"/api/v1/agent-studio/executions/{eid}")).status_code
                )
            await asyncio.sleep(0.01)

    second = history(rng, 100, datetime(2025, 2, 1, tzinfo=UTC))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://api",
            headers={"Authorization": f"Bearer {mint_token(api, uuid.uuid4(), all_scope=True)}"},
        ) as client,
    ):
        asking = asyncio.create_task(keep_asking(client))
        # New events while the replay runs: the live projector applies them, and the swap must
        # catch the rebuilt table up with them.
        result, more = await asyncio.gather(
            replay(replay_settings), publish(kafka_bootstrap, settings.topic, second)
        )
        await caught_up(engine, settings.consumer_group, settings.topic, [*sent, *more])
        await asyncio.sleep(0.2)  # a few more API calls after the swap
        done.set()
        await asyncio.wait_for(asking, timeout=10)

    assert answers, "the API was asked during the replay"
    assert set(answers) == {200}, f"API answers during the replay: {sorted(set(answers))}"
    assert result.events >= len(first)
    assert result.invalid == 0
    assert result.held_off > 0, "the swap's hold on the live projectors is measured"
    assert await table(engine) == reference(first + second)
    await assert_counts_match_rows(engine)
    await assert_rollups_match_rows(engine)
    # The swapped-in tables carry the migration's names: the schema still matches the models.
    await asyncio.to_thread(command.check, alembic_config(api))

    again = await replay(replay_settings)
    assert again.events == len(first) + len(second)
    assert await table(engine) == reference(first + second)


@pytest.mark.usefixtures("projector")
async def test_replay_in_batches_of_a_few_records_equals_the_live_projection(
    settings: ProjectorSettings,
    replay_settings: ProjectorSettings,
    engine: AsyncEngine,
    kafka_bootstrap: str,
) -> None:
    # Most runs' events lie in several batches, and a run not ended yet is held back for its
    # partition's next batch (core.changes.held_back), or to the end of the load, as the runs
    # queued last here are.
    start = datetime(2025, 4, 1, tzinfo=UTC)
    never_ending = [uuid.uuid4() for _ in range(12)]
    events = history(random.Random(11), 150, start) + [
        event_from_dict(
            {
                "specversion": "1.0",
                "id": str(uuid.uuid4()),
                "source": "test",
                "type": "ExecutionQueued",
                "subject": str(run),
                "time": start.isoformat(),
                "data": {
                    "execution_id": str(run),
                    "agent_id": str(uuid.uuid4()),
                    "user_id": str(uuid.uuid4()),
                    "input_data": {},
                },
            }
        )
        for run in never_ending
    ]
    sent = await publish(kafka_bootstrap, settings.topic, events)
    await caught_up(engine, settings.consumer_group, settings.topic, sent)
    assert await table(engine) == reference(events)

    consumer = replay_consumer(replay_settings)
    result = await replay_into_shadow(replay_settings, engine, consumer, batch_records=20)
    assert (result.events, result.executions) == (len(events), len(reference(events)))
    assert await table(engine) == reference(events)
    await assert_counts_match_rows(engine)
    await assert_rollups_match_rows(engine)


@pytest.mark.usefixtures("projector")
async def test_replay_applies_retention_like_prune(
    settings: ProjectorSettings,
    replay_settings: ProjectorSettings,
    engine: AsyncEngine,
    kafka_bootstrap: str,
) -> None:
    now = datetime.now(UTC)
    rng = random.Random(5)
    old = history(rng, 50, now - timedelta(days=200))
    recent = history(rng, 50, now - timedelta(days=10))
    sent = await publish(kafka_bootstrap, settings.topic, old + recent)
    await caught_up(engine, settings.consumer_group, settings.topic, sent)

    deleted = await prune(engine, now - timedelta(days=90), batch_size=7)
    pruned = await table(engine)
    assert deleted == 50
    assert pruned == reference(recent)
    await assert_counts_match_rows(engine)
    await assert_rollups_match_rows(engine)

    result = await replay(replay_settings.model_copy(update={"retention_days": 90}))
    assert result.pruned == 50
    assert await table(engine) == pruned
    await assert_counts_match_rows(engine)
    await assert_rollups_match_rows(engine)


@pytest.mark.usefixtures("projector")
async def test_the_swap_catches_up_and_prunes_with_the_counts_kept_by_the_triggers(
    settings: ProjectorSettings,
    replay_settings: ProjectorSettings,
    engine: AsyncEngine,
    kafka_bootstrap: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The shadow's counts and rollups are filled once it is loaded; what the swap then writes
    # (the catch-up, retention) is counted by the triggers it was given. Here the load stops
    # halfway, so the swap catches up half of every partition, old runs and recent ones.
    now = datetime.now(UTC)
    rng = random.Random(13)
    old = history(rng, 40, now - timedelta(days=200))
    recent = history(rng, 40, now - timedelta(days=10))
    events = old + recent
    rng.shuffle(events)
    sent = await publish(kafka_bootstrap, settings.topic, events)
    await caught_up(engine, settings.consumer_group, settings.topic, sent)
    loaded = replay_module._load

    async def halfway(
        settings: ProjectorSettings,
        engine: AsyncEngine,
        loader: Loader,
        end: dict[int, int],
        batch_records: int,
    ) -> None:
        await loaded(settings, engine, loader, {p: o // 2 for p, o in end.items()}, batch_records)
        assert 0 < loader.events < len(events)

    monkeypatch.setattr(replay_module, "_load", halfway)
    result = await replay(replay_settings.model_copy(update={"retention_days": 90}))
    # An old run with events in both halves is pruned before the swap, brought back by the
    # catch-up and pruned again: two deletions, as two prunes with late events between them.
    ends: dict[int, int] = {}
    for meta in sent:
        ends[meta.partition] = max(ends.get(meta.partition, 0), meta.offset + 1)
    halves: dict[uuid.UUID, set[bool]] = {e.execution_id: set() for e in old}
    for event, meta in zip(events, sent, strict=True):
        if event.execution_id in halves:
            halves[event.execution_id].add(meta.offset < ends[meta.partition] // 2)
    assert any(len(sides) == 2 for sides in halves.values()), "some old run in both halves"
    assert (result.events, result.pruned) == (len(events), sum(map(len, halves.values())))
    assert result.executions == len(reference(recent))
    assert await table(engine) == reference(recent)
    await assert_counts_match_rows(engine)
    await assert_rollups_match_rows(engine)


@pytest.mark.usefixtures("projector")
async def test_replay_refuses_a_database_not_at_the_newest_migration(
    settings: ProjectorSettings,
    replay_settings: ProjectorSettings,
    engine: AsyncEngine,
    kafka_bootstrap: str,
) -> None:
    # Its rebuild has this code's tables: swapped into an older schema, they would leave the
    # database at a revision it no longer is.
    events = history(random.Random(19), 20, datetime(2025, 5, 1, tzinfo=UTC))
    sent = await publish(kafka_bootstrap, settings.topic, events)
    await caught_up(engine, settings.consumer_group, settings.topic, sent)
    head = head_revision()
    before = ScriptDirectory(str(MIGRATIONS)).get_revision(head).down_revision
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": before})

    with pytest.raises(ReplayError, match=f"at migration {before}, and this replay .* of {head}"):
        await replay(replay_settings)

    assert await table(engine) == reference(events)
    async with engine.connect() as conn:
        shadow = await conn.scalar(text("SELECT to_regnamespace(:s)"), {"s": SHADOW})
    assert shadow is None, "refused before it loaded anything"
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": head})
    assert (await replay(replay_settings)).events == len(events)


@pytest.mark.usefixtures("projector")
async def test_a_loader_process_that_dies_fails_the_replay_before_any_swap(
    settings: ProjectorSettings, engine: AsyncEngine, kafka_bootstrap: str
) -> None:
    events = history(random.Random(7), 100, datetime(2025, 3, 1, tzinfo=UTC))
    sent = await publish(kafka_bootstrap, settings.topic, events)
    await caught_up(engine, settings.consumer_group, settings.topic, sent)
    live = await table(engine)
    two = settings.model_copy(update={"replay_workers": 2})

    replaying = asyncio.create_task(replay(two))
    victim = await _a_loader_process()
    os.kill(victim, signal.SIGKILL)  # as the kernel's OOM killer would
    with pytest.raises(LoaderFailed, match=r"failed: exited with code -9 before it was done"):
        await replaying

    assert not multiprocessing.active_children(), "the other loader was stopped"
    assert await table(engine) == live, "nothing swapped in"
    again = await replay(two)  # the lock is free and the shadow starts over
    assert again.events == len(events)
    assert await table(engine) == reference(events)


async def _a_loader_process(within: float = 10.0) -> int:
    """The pid of one of this process's loader processes, as soon as there is one."""
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        for child in multiprocessing.active_children():
            if child.name.startswith("replay-loader-") and child.pid is not None:
                return child.pid
        await asyncio.sleep(0.005)
    raise AssertionError(f"no loader process started within {within} s")


async def test_the_swaps_catch_up_reads_on_from_the_end_the_load_stopped_at(
    settings: ProjectorSettings, engine: AsyncEngine, kafka_bootstrap: str
) -> None:
    # Records published after replay read its end offsets come in the load's last fetch too;
    # left out there, they are the swap's catch-up's to load, so it must start at the end.
    sent = await publish(
        kafka_bootstrap,
        settings.topic,
        history(random.Random(5), 60, datetime(2025, 1, 1, tzinfo=UTC)),
    )
    consumer = replay_consumer(settings)
    await consumer.start()
    try:
        tps = await read_from_start(consumer, settings.topic, range(settings.topic_partitions))
        ends = {tp.partition: o for tp, o in (await consumer.end_offsets(tps)).items()}
        assert sum(ends.values()) == len(sent)
        end = {p: o // 2 for p, o in ends.items()}  # as if the rest came after the end offsets
        loader = Loader(settings, consumer, SHADOW, None, sum(end.values()), 10_000)
        await _create_shadow(engine)
        await _load(settings, engine, loader, end, 10_000)
        assert loader.events == sum(end.values())
        assert {tp.partition: await consumer.position(tp) for tp in tps} == end
    finally:
        await consumer.stop()
