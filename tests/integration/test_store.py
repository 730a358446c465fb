"""The SQL upsert implements exactly the fold: checked on the real PostgreSQL."""

from __future__ import annotations

import random
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, get_args

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from agent_history.contract.events import Event, EventType, event_from_dict
from agent_history.projector import merge
from agent_history.projector.core.changes import changes_of
from agent_history.projector.core.fold import Execution, fold_all
from agent_history.projector.merge import stage_rows
from agent_history.projector.store import write_changes
from agent_history.read_model.db import DatabaseSettings, make_engine
from agent_history.read_model.prepared import driver, driver_transaction
from agent_history.read_model.tables import agent_executions, agents
from tests.support import assert_counts_match_rows, assert_rollups_match_rows

pytestmark = pytest.mark.integration

T0 = datetime(2025, 1, 1, tzinfo=UTC)
KINDS: list[str] = list(get_args(EventType))


class _Record:
    """Just enough of a Kafka record to go through changes_of."""

    def __init__(self, event: Event) -> None:
        self.topic, self.partition, self.offset = "t", 0, 0
        self.key = str(event.data.execution_id).encode()
        self.value = event.model_dump_json().encode()
        self.headers: list[tuple[str, bytes]] = []


def make_event(kind: str, execution_id: uuid.UUID, at: datetime, **data: Any) -> Event:
    ids = {
        "execution_id": str(execution_id),
        "agent_id": str(data.pop("agent_id")),
        "user_id": str(data.pop("user_id")),
    }
    if kind in ("ExecutionQueued", "ExecutionStarted"):
        data.setdefault("input_data", {"k": kind})
    if kind == "ExecutionFailed":
        data.setdefault("error_message", "boom")
    if kind == "ExecutionTimedOut":
        seen = (at - timedelta(seconds=60)).isoformat()
        data.update(reason="worker_lost", last_seen_at=seen, since=seen, limit_ms=60_000)
    # An envelope attribute, not data.
    trace = {"traceparent": data.pop("traceparent")} if "traceparent" in data else {}
    return event_from_dict(
        {
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "source": "test",
            "type": kind,
            "subject": str(execution_id),
            "time": at.isoformat(),
            "data": {**ids, **data},
            **trace,
        }
    )


@contextmanager
def copying_from(rows: int) -> Iterator[None]:
    """Batches of ``rows`` or more copied (merge.COPY_FROM), the tests' small ones too."""
    before, merge.COPY_FROM = merge.COPY_FROM, rows
    try:
        yield
    finally:
        merge.COPY_FROM = before


async def apply(engine: AsyncEngine, events: list[Event], *, copied: bool = True) -> None:
    """Write the events' batch as the projector writes a backlog's: its rows copied into the
    session's table for them, however few; or (``copied`` False, as for a role refused
    temporary tables or a small batch) as JSON."""
    changes = changes_of([_Record(e) for e in events], max_bytes=1 << 20)
    assert not changes.poison
    if not copied:  # a connection of its own: the pool's may have their tables already
        engine = create_async_engine(engine.url, poolclass=NullPool)
    try:
        with copying_from(1):
            async with driver_transaction(engine, stage_rows if copied else None) as conn:
                await write_changes(conn, changes.agents, changes.users, changes.rows.values())
    finally:
        if not copied:
            await engine.dispose()


async def stored(engine: AsyncEngine, execution_id: uuid.UUID) -> Any:
    async with engine.connect() as conn:
        result = await conn.execute(
            select(agent_executions).where(agent_executions.c.id == execution_id)
        )
        return result.one_or_none()


def as_row(e: Execution) -> dict[str, Any]:
    return {
        "agent_id": e.agent_id,
        "user_id": e.user_id,
        "status": e.status,
        "execution_start": e.execution_start,
        "execution_end": e.execution_end,
        "execution_time_ms": e.execution_time_ms,
        "input_data": e.input_data,
        "output_data": e.output_data,
        "error_message": e.error_message,
        "timeout_ms": e.timeout_ms,
        "last_seen_at": e.last_seen_at,
        "model": e.model,
        "tags": e.tags,
        "metadata": e.metadata,
        "parent_execution_id": e.parent_execution_id,
        "trace_id": e.trace_id,
        "input_tokens": e.input_tokens,
        "output_tokens": e.output_tokens,
        "cost": e.cost,
        "cost_currency": e.cost_currency,
        "input_rank": e.input_rank,
        "input_time": e.input_time,
        "input_event_id": e.input_event_id,
        "terminal_event_id": e.terminal_event_id,
    }


async def test_create_execution_record(db_engine: AsyncEngine) -> None:
    eid, agent, user = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await apply(
        db_engine,
        [make_event("ExecutionStarted", eid, T0, agent_id=agent, user_id=user, agent_name="Scout")],
    )
    row = await stored(db_engine, eid)
    assert (row.status, row.agent_id, row.user_id) == ("running", agent, user)
    assert row.execution_start == T0
    assert row.execution_end is None
    assert row.execution_time_ms is None
    assert row.input_data == {"k": "ExecutionStarted"}
    async with db_engine.connect() as conn:
        assert await conn.scalar(select(agents.c.name).where(agents.c.id == agent)) == "Scout"


async def test_update_execution_record_on_completion(db_engine: AsyncEngine) -> None:
    eid, agent, user = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await apply(db_engine, [make_event("ExecutionStarted", eid, T0, agent_id=agent, user_id=user)])
    created = (await stored(db_engine, eid)).created_at
    end = T0 + timedelta(milliseconds=2500)
    await apply(
        db_engine,
        [
            make_event(
                "ExecutionCompleted", eid, end, agent_id=agent, user_id=user, output_data=[1, 2]
            )
        ],
    )
    row = await stored(db_engine, eid)
    assert (row.status, row.execution_end, row.execution_time_ms) == ("completed", end, 2500)
    assert row.output_data == [1, 2]
    assert row.error_message is None
    assert row.created_at == created
    assert row.updated_at >= created


_DEFERRED = text("SELECT to_regclass('pg_temp.rollup_deferred_0014') IS NOT NULL")
# Everyone, this role included (the database's owner), as REVOKE and GRANT name them.
_NAMES = text("SELECT quote_ident(current_database()), 'PUBLIC, ' || quote_ident(current_user)")


# Below and above the count from which the rollup trigger plans its statement per call (0012);
# and by a role that may not create temporary tables, which gets the two passes instead.
@pytest.mark.parametrize(("runs", "temporary"), [(5, True), (150, True), (150, False)])
async def test_a_batch_that_updates_some_runs_and_inserts_others_rolls_up_both(
    db_engine: AsyncEngine, database_url: str, runs: int, temporary: bool
) -> None:
    # One upsert, two triggers: its updated runs are rolled up in its inserted runs' pass
    # (migration 0014). Started runs, then a batch that ends them, starts as many new ones
    # and ends some of those in the same hour, in another model and with costs.
    agent, user = uuid.uuid4(), uuid.uuid4()
    first, second = [uuid.uuid4() for _ in range(runs)], [uuid.uuid4() for _ in range(runs)]
    ids = {"agent_id": agent, "user_id": user}
    await apply(db_engine, [make_event("ExecutionStarted", e, T0, **ids) for e in first])
    batch = []
    for i, (old, new) in enumerate(zip(first, second, strict=True)):
        at = T0 + timedelta(seconds=i + 1)
        kind = ("ExecutionCompleted", "ExecutionFailed", "ExecutionCancelled")[i % 3]
        batch.append(make_event(kind, old, at, **ids, **_details(random.Random(i), kind)))
        batch.append(make_event("ExecutionStarted", new, at, **ids, model=f"m{i % 2}"))
        if i % 2:
            batch.append(make_event("ExecutionCompleted", new, at + timedelta(seconds=i), **ids))
    changes = changes_of([_Record(e) for e in batch], max_bytes=1 << 20)
    # A session of its own, so that its temporary table is this write's doing.
    engine = make_engine(DatabaseSettings(database_url=database_url))
    try:
        async with engine.begin() as conn:
            database, role = (await conn.execute(_NAMES)).one()
            if not temporary:  # given back before the commit
                await conn.execute(text(f"REVOKE TEMPORARY ON DATABASE {database} FROM {role}"))
            assert not await conn.scalar(_DEFERRED)
            raw = await driver(conn)  # in the transaction: statements went before
            await write_changes(raw, changes.agents, changes.users, changes.rows.values())
            # The updated rows went through the session's table, when it may have one.
            assert await conn.scalar(_DEFERRED) == temporary
            # And the upsert's setting is gone, whichever way its rows were rolled up.
            assert await conn.scalar(text("SELECT current_setting('agent_history.upsert')")) == ""
            # A plain UPDATE later in the same transaction is rolled up on its own, as before.
            await conn.execute(
                update(agent_executions).where(agent_executions.c.id == first[0]).values(model="x")
            )
            if not temporary:
                await conn.execute(text(f"GRANT TEMPORARY ON DATABASE {database} TO {role}"))
    finally:
        await engine.dispose()
    ended = ("completed", "failed", "cancelled")
    expected = Counter(ended[i % 3] for i in range(runs))
    expected.update("completed" if i % 2 else "running" for i in range(runs))
    async with db_engine.connect() as conn:
        query = select(agent_executions.c.status).where(agent_executions.c.agent_id == agent)
        assert Counter((await conn.execute(query)).scalars()) == expected
    await assert_counts_match_rows(db_engine)
    await assert_rollups_match_rows(db_engine, [agent])


@pytest.mark.parametrize("copied", [True, False], ids=["copied", "json"])
@pytest.mark.parametrize(
    ("input_data", "output_data"),
    [
        ({"n": 2**70, "f": 0.1, "deep": [{"x": None}]}, "a bare string"),  # beyond orjson
        ({"text": 'é ✓ \\u0000 "quoted"', "neg": -2.5e-7}, None),
        ({}, [1, "two", 3.0, True]),
    ],
)
async def test_values_reach_the_table_exactly(
    db_engine: AsyncEngine, input_data: dict[str, Any], output_data: Any, copied: bool
) -> None:
    """The batch travels copied, or as one JSON document: every kind of value must come out as
    it went in."""
    eid, agent, user = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    start = datetime(2025, 1, 1, 2, 3, 4, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    end = T0 + timedelta(days=1)  # whole seconds: no fraction in its text
    ids = {"agent_id": agent, "user_id": user}
    await apply(
        db_engine,
        [
            make_event("ExecutionStarted", eid, start, input_data=input_data, **ids),
            make_event("ExecutionCompleted", eid, end, output_data=output_data, **ids),
        ],
        copied=copied,
    )
    row = await stored(db_engine, eid)
    assert (row.input_data, row.output_data) == (input_data, output_data)
    assert (row.execution_start, row.execution_end) == (start, end)
    assert row.execution_time_ms == (end - start) // timedelta(milliseconds=1)


async def test_update_execution_record_on_failure(db_engine: AsyncEngine) -> None:
    eid, agent, user = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await apply(db_engine, [make_event("ExecutionStarted", eid, T0, agent_id=agent, user_id=user)])
    end = T0 + timedelta(seconds=1, microseconds=999)
    await apply(
        db_engine,
        [
            make_event(
                "ExecutionFailed",
                eid,
                end,
                agent_id=agent,
                user_id=user,
                error_message="rate limited",
            )
        ],
    )
    row = await stored(db_engine, eid)
    assert (row.status, row.error_message, row.execution_time_ms) == (
        "failed",
        "rate limited",
        1000,
    )


def _details(rng: random.Random, kind: str) -> dict[str, Any]:
    """What a run carries, drawn so that each event's values differ from the others'."""
    n = rng.randrange(10**6)
    if kind in ("ExecutionQueued", "ExecutionStarted"):
        return {
            "model": f"model-{n}",
            "tags": [f"t{n}", "shared", "ü ✓"][: rng.randint(0, 3)],
            "metadata": {"n": n, "ratio": n / 7, "ok": n % 2 == 0, "who": f"w{n}"},
            "parent_execution_id": str(uuid.uuid4()),
        }
    if kind == "ExecutionHeartbeat":
        return {}
    return {
        "usage": {
            "input_tokens": n,
            "output_tokens": rng.choice([None, n // 3, 10**15]),
            "cost": rng.choice(
                [None, {"amount": f"{n}.{n:012d}"}, {"amount": "0", "currency": "EUR"}]
            ),
        }
    }


def _traceparent(rng: random.Random) -> str:
    return f"00-{rng.getrandbits(128) | 1:032x}-{rng.getrandbits(64) | 1:016x}-01"


@pytest.mark.parametrize("seed", range(120))
async def test_sql_merge_equals_fold(db_engine: AsyncEngine, seed: int) -> None:
    """Random events, duplicated and shuffled, applied in random batches == the pure fold."""
    rng = random.Random(seed)
    eid = uuid.uuid4()
    agents_ = [uuid.uuid4(), uuid.uuid4()]
    # Every kind; a few kinds only (verdicts and real ends, ...); heartbeats and one other kind
    # (or heartbeats alone), which a draw over every kind rarely makes.
    kinds = [
        KINDS,
        rng.sample(KINDS, k=rng.randint(1, 3)),
        ["ExecutionHeartbeat", rng.choice(KINDS)],
    ][seed % 3]
    events = [
        make_event(
            kind,
            eid,
            T0 + timedelta(milliseconds=rng.randrange(0, 5) * 700),
            agent_id=rng.choice(agents_),
            user_id=rng.choice(agents_),
            **({"timeout_ms": rng.randint(1, 10**6)} if rng.random() < 0.5 else {}),
            **(_details(rng, kind) if rng.random() < 0.6 else {}),
            **({"traceparent": _traceparent(rng)} if rng.random() < 0.6 else {}),
        )
        for kind in (rng.choice(kinds) for _ in range(rng.randint(1, 6)))
    ]
    delivered = events + rng.sample(events, k=rng.randint(0, len(events)))
    rng.shuffle(delivered)
    n = len(delivered)
    cuts = sorted({*rng.sample(range(1, n + 1), k=rng.randint(1, n)), n})
    start = 0
    for cut in cuts:
        # Half of the seeds write their batches as JSON, the way of a role refused temporary
        # tables; the other half copy them.
        await apply(db_engine, delivered[start:cut], copied=seed % 2 == 0)
        start = cut
    expected = fold_all(events)[eid]
    row = await stored(db_engine, eid)
    assert {k: getattr(row, k) for k in as_row(expected)} == as_row(expected)
    await assert_counts_match_rows(db_engine)
    await assert_rollups_match_rows(db_engine)


async def test_a_role_refused_temporary_tables_writes_its_batches_as_json(
    db_engine: AsyncEngine, database_url: str
) -> None:
    eid, agent, user = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    events = [
        make_event("ExecutionStarted", eid, T0, agent_id=agent, user_id=user),
        make_event(
            "ExecutionCompleted", eid, T0 + timedelta(seconds=2), agent_id=agent, user_id=user
        ),
    ]
    changes = changes_of([_Record(e) for e in events], max_bytes=1 << 20)
    async with db_engine.begin() as conn:
        database, role = (await conn.execute(_NAMES)).one()
        await conn.execute(text(f"REVOKE TEMPORARY ON DATABASE {database} FROM {role}"))
    engine = create_async_engine(database_url, poolclass=NullPool)
    try:
        with copying_from(1):
            async with driver_transaction(engine, stage_rows) as conn:
                await write_changes(conn, changes.agents, changes.users, changes.rows.values())
                assert await conn.fetchval("SELECT to_regclass('pg_temp.batch_rows')") is None
    finally:
        await engine.dispose()
        async with db_engine.begin() as conn:
            await conn.execute(text(f"GRANT TEMPORARY ON DATABASE {database} TO {role}"))
    assert (await stored(db_engine, eid)).status == "completed"
    await assert_rollups_match_rows(db_engine, [agent])


@pytest.mark.parametrize("runs", [merge.COPY_FROM - 1, merge.COPY_FROM])
async def test_a_batch_of_enough_rows_is_copied_through_the_sessions_table(
    db_engine: AsyncEngine, runs: int
) -> None:
    agent, user = uuid.uuid4(), uuid.uuid4()
    ids = [uuid.uuid4() for _ in range(runs)]
    changes = changes_of(
        [_Record(make_event("ExecutionStarted", e, T0, agent_id=agent, user_id=user)) for e in ids],
        max_bytes=1 << 20,
    )
    inserted = "SELECT n_tup_ins FROM pg_stat_xact_all_tables WHERE relid = $1::regclass"
    async with driver_transaction(db_engine, stage_rows) as conn:
        before = await conn.fetchval(inserted, "pg_temp.batch_rows")
        await write_changes(conn, changes.agents, changes.users, changes.rows.values())
        # Copied into the table (a smaller batch went as JSON), and emptied after the merge.
        copied = await conn.fetchval(inserted, "pg_temp.batch_rows") - before
        assert copied == (runs if runs >= merge.COPY_FROM else 0)
        assert await conn.fetchval("SELECT count(*) FROM pg_temp.batch_rows") == 0
    assert {(await stored(db_engine, e)).status for e in ids} == {"running"}


async def test_batches_copied_in_one_transaction_are_merged_one_at_a_time(
    db_engine: AsyncEngine,
) -> None:
    # As replay's catch-up writes them: the second batch ends the runs the first started.
    agent, user = uuid.uuid4(), uuid.uuid4()
    ids = [uuid.uuid4() for _ in range(3)]
    started = [make_event("ExecutionStarted", e, T0, agent_id=agent, user_id=user) for e in ids]
    ended = [
        make_event("ExecutionCompleted", e, T0 + timedelta(seconds=1), agent_id=agent, user_id=user)
        for e in ids
    ]
    with copying_from(1):
        async with driver_transaction(db_engine, stage_rows) as conn:
            for batch in (started, ended):
                changes = changes_of([_Record(e) for e in batch], max_bytes=1 << 20)
                await write_changes(conn, changes.agents, changes.users, changes.rows.values())
                # The next batch's merge reads its own rows only.
                assert await conn.fetchval("SELECT count(*) FROM pg_temp.batch_rows") == 0
    assert {(await stored(db_engine, e)).status for e in ids} == {"completed"}
    await assert_rollups_match_rows(db_engine, [agent])
